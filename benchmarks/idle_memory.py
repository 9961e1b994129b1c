"""``python -m benchmarks.idle_memory``: resident memory per idle TLS connection, side by side.

Each server of the comparison (``servers.SERVERS``) is started alone on core 0 with the same
certificate. A few connections are opened and closed first (imports, the loop's and OpenSSL's
first allocations), then N TLS connections are opened, each makes one request and stays
open, and the server's resident memory (VmRSS) is read before and after: the growth ÷ N is the
cost of one idle connection. Rounds alternate the servers; the report gives the median and
the range, and each server's ratio to the bare uvloop TLS transport with this package's
``SSLContext`` (an asyncio ``Protocol`` answering fixed bytes: the floor of any server here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from framework.load.report import machine_info

from .servers import SERVERS, Launched, ServerSpec, available, make_certificates, open_idle

__all__ = ["main", "measure"]

FLOOR = "bare uvloop TLS, framework context"
DEFAULT_SERVERS = ("framework", FLOOR, "bare uvloop TLS", "uvicorn httptools", "aiohttp.web")
WARM_CONNECTIONS = 20


def measure(server: Launched, ca: Path, count: int) -> float:
    """Bytes of resident memory ``server`` grows by per idle TLS connection (one request each)."""
    import uvloop

    async def main() -> float:
        for _, writer in await open_idle(server.port, ca, WARM_CONNECTIONS):
            writer.transport.abort()
        before = server.rss_bytes()
        conns = await open_idle(server.port, ca, count)
        after = server.rss_bytes()
        for _, writer in conns:
            writer.transport.abort()
        return (after - before) / count

    return uvloop.run(main())


def run(
    specs: Sequence[ServerSpec], count: int, rounds: int, workdir: Path
) -> dict[str, list[float]]:
    """KiB per idle connection, per server name, one figure per round."""
    specs = list(specs)
    certs = make_certificates(workdir / "pki")
    results: dict[str, list[float]] = {s.name: [] for s in specs}
    for r in range(rounds):
        for spec in specs[r % len(specs) :] + specs[: r % len(specs)]:
            server = Launched.start(spec, certs, workdir / "servers")
            try:
                results[spec.name].append(measure(server, certs.ca, count) / 1024)
            finally:
                server.stop()
            print(
                f"idle_memory: round {r + 1}: {spec.name} {results[spec.name][-1]:.1f} KiB",
                file=sys.stderr,
                flush=True,
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.idle_memory", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("-n", "--connections", type=int, default=1000, help="idle connections (1000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--servers",
        default=";".join(DEFAULT_SERVERS),
        help="server names separated by ';' (default: %(default)s)",
    )
    args = p.parse_args(argv)
    names = [n.strip() for n in args.servers.split(";") if n.strip()]
    by_name = {s.name: s for s in SERVERS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        p.error(f"unknown server(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    specs = []
    for name in names:
        why = available(by_name[name])
        if why:
            print(f"idle_memory: skipping {name}: {why}", file=sys.stderr)
        else:
            specs.append(by_name[name])
    if not specs:
        p.error("no server can run here")
    with tempfile.TemporaryDirectory(prefix="idle-memory-") as tmp:
        results = run(specs, args.connections, args.rounds, Path(tmp))
    info = machine_info()
    print(time.strftime("Measured %Y-%m-%d %H:%M %Z."))
    print(
        f"Idle TLS connections: {args.connections}, one request each; {args.rounds} round(s); "
        f"server RSS growth ÷ N, median (min–max)."
    )
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    print(
        f"Machine: {info['cpu']} ({info['cores']} cores), {info['os']}, Python {info['python']}, "
        f"{info['openssl']}; {versions}."
    )
    floor = statistics.median(results[FLOOR]) if results.get(FLOOR) else None
    print("\n| server | KiB per connection | ÷ bare uvloop TLS (same SSLContext) |")
    print("|---|---:|---:|")
    for name, values in results.items():
        med = statistics.median(values)
        ratio = f"{med / floor:.2f}×" if floor else ""
        print(f"| {name} | {med:.1f} ({min(values):.1f}–{max(values):.1f}) | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
