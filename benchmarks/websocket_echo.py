"""``python -m benchmarks.websocket_echo``: WebSocket echo over TLS, this server and its peers.

Each server (``apps/serve_ws.py``) runs alone, pinned to core 0, with the same certificate
and the same echo app; the load runs here, on core 1: C connections (the ``websockets``
library as client, compression off) each send a message of the given size and wait for its
echo, for D seconds per size after a short warm-up. Reported per server and size: round
trips per second, the server's CPU time per message (user + system, from /proc: the figure
the load generator's own speed does not cap), and both as ratios to this package's. Then,
with ``--idle N``, the resident memory one idle WebSocket costs each server (N opened, each
after one echo; VmRSS growth / N), with ``permessage-deflate`` offered and not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from framework.load.report import machine_info

from .servers import Launched, ServerSpec, available, make_certificates

__all__ = ["SERVERS", "main"]

LAUNCHER = "benchmarks.apps.serve_ws"
SERVERS = (
    ServerSpec("framework", "ws-ours", launcher=LAUNCHER, note="App.websocket route"),
    ServerSpec("framework ASGI", "ws-ours-asgi", launcher=LAUNCHER, note="raw ASGI echo app"),
    ServerSpec(
        "uvicorn websockets",
        "ws-uvicorn-websockets",
        ("uvicorn", "websockets"),
        launcher=LAUNCHER,
        note="raw ASGI echo app, --ws websockets",
    ),
    ServerSpec(
        "uvicorn wsproto",
        "ws-uvicorn-wsproto",
        ("uvicorn", "wsproto"),
        launcher=LAUNCHER,
        note="raw ASGI echo app, --ws wsproto",
    ),
    ServerSpec("aiohttp.web", "ws-aiohttp", ("aiohttp",), launcher=LAUNCHER),
)
WARM_UP = 0.5


def _context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


async def _echo_load(url: str, ca: Path, size: int, connections: int, seconds: float) -> int:
    """Round trips completed by ``connections`` clients in ``seconds`` (after the warm-up)."""
    from websockets.asyncio.client import connect

    payload = os.urandom(size)
    context = _context(ca)
    counts = [0] * connections
    measuring = asyncio.Event()

    async def client(index: int, deadline: float) -> None:
        async with connect(url, ssl=context, compression=None, max_size=None) as ws:
            while time.monotonic() < deadline:
                await ws.send(payload)
                await ws.recv()
                if measuring.is_set():
                    counts[index] += 1

    start = time.monotonic()
    tasks = [
        asyncio.ensure_future(client(i, start + WARM_UP + seconds)) for i in range(connections)
    ]
    await asyncio.sleep(WARM_UP)  # the warm-up is a span of time, not a synchronisation
    measuring.set()
    await asyncio.gather(*tasks)
    return sum(counts)


async def _idle(url: str, ca: Path, count: int, compression: str | None) -> list[Any]:
    from websockets.asyncio.client import connect

    context = _context(ca)
    gate = asyncio.Semaphore(32)

    async def one() -> Any:
        async with gate:
            ws = await connect(
                url, ssl=context, compression=compression, ping_interval=None, open_timeout=30
            )
            await ws.send(b"x" * 512)
            await ws.recv()
            return ws

    return list(await asyncio.gather(*(one() for _ in range(count))))


def measure_echo(
    server: Launched, ca: Path, size: int, connections: int, seconds: float
) -> dict[str, float]:
    """Round trips per second and server CPU microseconds per message for one size."""
    import uvloop

    cpu = server.cpu_seconds()
    started = time.monotonic()
    trips = uvloop.run(
        _echo_load(f"wss://localhost:{server.port}/ws", ca, size, connections, seconds)
    )
    # CPU spans the warm-up too: count its messages at the measured rate.
    elapsed = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu
    rate = trips / seconds
    return {"rate": rate, "cpu_us": cpu / max(1.0, rate * elapsed) * 1e6}


def measure_idle(server: Launched, ca: Path, count: int, compression: str | None) -> float:
    """KiB of server memory per idle WebSocket."""
    import uvloop

    url = f"wss://localhost:{server.port}/ws"

    async def main() -> float:
        for ws in await _idle(url, ca, 10, compression):  # first allocations
            await ws.close()
        time.sleep(0.2)  # noqa: ASYNC251 - let the server free what the warm-up used
        before = server.rss_bytes()
        sockets = await _idle(url, ca, count, compression)
        after = server.rss_bytes()
        for ws in sockets:
            ws.transport.abort()
        return (after - before) / count / 1024

    return uvloop.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.websocket_echo", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("-c", "--connections", type=int, default=16)
    p.add_argument("-d", "--duration", type=float, default=2.0, help="seconds per size (2)")
    p.add_argument("--sizes", default="32,4096", help="message sizes in bytes (32,4096)")
    p.add_argument("--idle", type=int, default=0, help="measure memory with N idle WebSockets")
    p.add_argument("--no-echo", action="store_true", help="skip the echo load (memory only)")
    p.add_argument("--rounds", type=int, default=1, help="rounds, servers in turn (median)")
    p.add_argument("--servers", default=";".join(s.name for s in SERVERS))
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    wanted = [n.strip() for n in args.servers.split(";") if n.strip()]
    specs = [s for s in SERVERS if s.name in wanted]
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {1})  # the load beside the server's core 0
    for spec in list(specs):
        why = available(spec)
        if why is not None:
            print(f"websocket_echo: skipping {spec.name}: {why}", file=sys.stderr)
            specs.remove(spec)
    rounds: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        certs = make_certificates(Path(tmp) / "pki")
        for r in range(args.rounds):
            # Each round starts with another server: a drift in the machine's load is spread.
            for spec in specs[r % len(specs) :] + specs[: r % len(specs)]:
                row = _measure(spec, certs, Path(tmp) / "servers", sizes, args)
                rounds[spec.name].append(row)
                print(f"websocket_echo: {spec.name}: {json.dumps(row)}", file=sys.stderr)
    results = {name: _median(rows) for name, rows in rounds.items()}
    print(report(results, sizes, args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _measure(
    spec: ServerSpec, certs: Any, workdir: Path, sizes: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    server = Launched.start(spec, certs, workdir)
    try:
        row: dict[str, Any] = {}
        if not args.no_echo:
            for size in sizes:
                row[str(size)] = measure_echo(
                    server, certs.ca, size, args.connections, args.duration
                )
        if args.idle:
            row["idle_kib"] = measure_idle(server, certs.ca, args.idle, None)
            row["idle_deflate_kib"] = measure_idle(server, certs.ca, args.idle, "deflate")
        return row
    finally:
        server.stop()


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds."""
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, dict):
            out[key] = {k: statistics.median(row[key][k] for row in rows) for k in value}
        else:
            out[key] = statistics.median(row[key] for row in rows)
    return out


def report(results: dict[str, Any], sizes: list[int], args: argparse.Namespace) -> str:
    """Markdown tables, with ratios to this package's figures."""
    ours = results.get("framework", {})
    info = machine_info()
    where = ", ".join(f"{k} {info[k]}" for k in ("cpu", "cores", "python") if k in info)
    lines = [
        f"WebSocket echo over TLS, {args.connections} connections, median of {args.rounds}"
        f" round(s) ({where})",
        "",
    ]
    if not args.no_echo:
        lines += [
            "| server | size | round trips/s | × framework | server CPU µs/msg | × framework |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in results.items():
            for size in sizes:
                got, base = row[str(size)], ours.get(str(size))
                rate_x = got["rate"] / base["rate"] if base else float("nan")
                cpu_x = got["cpu_us"] / base["cpu_us"] if base else float("nan")
                lines.append(
                    f"| {name} | {size} B | {got['rate']:,.0f} | {rate_x:.2f} | "
                    f"{got['cpu_us']:.1f} | {cpu_x:.2f} |"
                )
    if args.idle:
        lines += ["", f"Memory per idle WebSocket ({args.idle} open, one echo each):", ""]
        lines += ["| server | KiB, no compression | KiB, permessage-deflate |", "|---|---|---|"]
        for name, row in results.items():
            lines.append(f"| {name} | {row['idle_kib']:.1f} | {row['idle_deflate_kib']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
