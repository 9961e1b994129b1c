"""``python -m benchmarks.asgi_ab``: server CPU per request, servers kept running, runs alternated.

Each ``LABEL=KIND[@CHECKOUT]`` starts one server of ``apps/serve_asgi.py`` (KIND as there:
``asgi-ours``, ``asgi-native``, ``asgi-uvicorn-httptools``, ...), pinned to core 0, from
CHECKOUT when given (another clone or worktree of this repository, to put a change beside
the code before it). All stay up for the whole run; each round runs ``wrk -t1 -c64`` on core 1
against each in turn (the order reversed every other round), a second of warm-up then D
seconds measured, and reads the server's user + system CPU from /proc around it. Printed per
server: the median (min-max) CPU per request and requests/s, and both as ratios to the first.
Alternating long-running servers this way drifts less than restarting them each round.

Example: ``git worktree add /tmp/before HEAD~1`` then
``python -m benchmarks.asgi_ab before=asgi-ours@/tmp/before after=asgi-ours native=asgi-native``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .servers import cpu_seconds, free_port, make_certificates, pin_prefix, wait_listening
from .tools import SCENARIOS, run_wrk, wrk_path

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
HELLO = next(s for s in SCENARIOS if s.name == "hello")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.asgi_ab", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("servers", nargs="+", metavar="LABEL=KIND[@CHECKOUT]")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("-d", "--duration", type=int, default=3, help="whole seconds measured")
    args = parser.parse_args(argv)
    if wrk_path() is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    specs = []
    for text in args.servers:
        label, sep, rest = text.partition("=")
        kind, _, checkout = rest.partition("@")
        if not sep or not label or not kind:
            parser.error(f"{text!r}: expected LABEL=KIND[@CHECKOUT]")
        specs.append((label, kind, Path(checkout).resolve() if checkout else REPO))
    with tempfile.TemporaryDirectory(prefix="asgi-ab-") as tmp:
        certs = make_certificates(Path(tmp))
        running = []
        try:
            for label, kind, checkout in specs:
                port = free_port()
                log = Path(tmp) / f"{label}.log"
                env = {**os.environ, "PYTHONPATH": str(checkout)}
                command = [
                    *pin_prefix(0), sys.executable, "-m", "benchmarks.apps.serve_asgi", kind,
                    "--port", str(port), "--cert", str(certs.cert), "--key", str(certs.key),
                    "--no-tickets",
                ]  # fmt: skip
                with log.open("w") as out:
                    process = subprocess.Popen(
                        command, cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                running.append((label, process, f"https://127.0.0.1:{port}", log))
                if not wait_listening(process, [port], START_TIMEOUT):
                    raise RuntimeError(f"{label} did not start:\n{log.read_text()}")
            figures: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in running}
            for round_ in range(args.rounds):
                for label, process, url, _ in running if round_ % 2 == 0 else running[::-1]:
                    run_wrk(url, HELLO, 1)  # warm-up
                    before = cpu_seconds(process.pid)
                    answered = run_wrk(url, HELLO, args.duration).requests
                    used = cpu_seconds(process.pid) - before
                    figures[label].append((used / answered * 1e6, answered / args.duration))
        finally:
            for _, process, _, _ in running:
                process.terminate()
                process.wait(10)
    first_cpu = first_rps = 0.0
    print(f"{args.rounds} rounds of {args.duration:g} s, wrk -t1 -c64, medians (min-max)")
    for label, values in figures.items():
        cpu = [v[0] for v in values]
        rps = [v[1] for v in values]
        mid_cpu, mid_rps = statistics.median(cpu), statistics.median(rps)
        first_cpu, first_rps = first_cpu or mid_cpu, first_rps or mid_rps
        print(
            f"{label:16} {mid_cpu:5.1f} µs/request ({min(cpu):.1f}-{max(cpu):.1f}), "
            f"x{mid_cpu / first_cpu:.2f}   {mid_rps:8,.0f} req/s "
            f"({min(rps):,.0f}-{max(rps):,.0f}), x{mid_rps / first_rps:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
