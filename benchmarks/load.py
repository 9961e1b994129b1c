"""``python -m benchmarks.load URL``: load-test an HTTPS (or HTTP) server.

The command line, the live progress line, Ctrl-C, and ``--processes``: each process runs an
``Engine`` on its own event loop with its share of the connections (and of the rate or count),
sends its counts to the parent every second and its histogram at the end, and the parent
merges them. ``run()`` is the same thing as a function, for scripts and tests.

Examples::

    python -m benchmarks.load https://localhost:8443/ --ca pki/ca.pem -c 64 -d 30s
    python -m benchmarks.load https://localhost:8443/ --ca pki/ca.pem --rate 2000 -d 60s
    python -m benchmarks.load https://localhost:8443/upload --body 1MiB -c 8 -n 500 --json r.json
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO

from .engine import Engine, Settings, Target
from .histogram import Histogram
from .report import build_result, format_progress, format_summary, write_json, write_plot
from .tools import LOOPS, new_loop

__all__ = ["main", "parse_duration", "parse_size", "run"]

Progress = Callable[[float, float, int, int, bool], None]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_size(text: str) -> int:
    """``"64KiB"`` -> 65536, ``"1MiB"``, ``"1M"`` (10**6), ``"100"``.

    Raises:
        ValueError: not a size.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 100, 64KiB or 1MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    """``"30s"`` -> 30.0, ``"500ms"``, ``"2m"``, ``"1h"``, ``"10"`` (seconds).

    Raises:
        ValueError: not a duration.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text)
    if not m or m.group(2) not in _TIME_UNITS:
        raise ValueError(f"not a duration: {text!r} (try 30s, 500ms or 2m)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


# --- one process ---------------------------------------------------------------------------


async def _run_engine(
    settings: Settings, target: Target, tick: Callable[[Engine], None] | None, stop_on_sigint: bool
) -> tuple[dict[str, Any], bool]:
    engine = Engine(settings, target)
    loop = engine.loop
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        engine.stop()

    if stop_on_sigint and threading.current_thread() is threading.main_thread():
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    ticker: asyncio.TimerHandle | None = None

    def on_tick() -> None:
        nonlocal ticker
        assert tick is not None
        tick(engine)
        ticker = loop.call_later(1.0, on_tick)

    if tick is not None:
        ticker = loop.call_later(1.0, on_tick)
    try:
        stats = await engine.run()
    finally:
        if ticker is not None:
            ticker.cancel()
        if stop_on_sigint and threading.current_thread() is threading.main_thread():
            loop.remove_signal_handler(signal.SIGINT)
    return stats.to_json(), interrupted


class _Rate:
    """Requests per second over the last tick, from running totals."""

    def __init__(self) -> None:
        self.last_count = 0
        self.last_time = time.perf_counter()

    def update(self, count: int) -> float:
        now = time.perf_counter()
        if count < self.last_count:  # the warm-up ended and the counts restarted
            self.last_count = 0
        rate = (count - self.last_count) / max(1e-9, now - self.last_time)
        self.last_count, self.last_time = count, now
        return rate


def _run_single(settings: Settings, progress: Progress | None) -> tuple[dict[str, Any], bool]:
    target = Target.from_settings(settings)
    rate = _Rate()
    started = time.perf_counter()

    def tick(engine: Engine) -> None:
        assert progress is not None
        stats = engine.stats
        count = stats.ok + stats.error_count
        progress(
            time.perf_counter() - started,
            rate.update(count),
            stats.histogram.percentile(99),
            stats.error_count,
            not engine.measuring,
        )

    with asyncio.Runner(loop_factory=lambda: new_loop(settings.loop)) as runner:
        return runner.run(_run_engine(settings, target, tick if progress else None, True))


# --- several processes ---------------------------------------------------------------------


def _worker(settings: Settings, pipe: Connection, barrier: Any) -> None:
    """A child process: wait for the others, run, report every second and at the end."""
    # The parent decides when to stop (it forwards Ctrl-C); a terminal's SIGINT reaches the
    # whole process group, so the children ignore their own copy.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target = Target.from_settings(settings)
    barrier.wait(60)

    async def main() -> tuple[dict[str, Any], bool]:
        loop = asyncio.get_running_loop()
        engines: list[Engine] = []

        def on_message() -> None:
            try:
                message = pipe.recv()
            except EOFError:
                message = "stop"
            if message == "stop" and engines:
                engines[0].stop()

        def tick(engine: Engine) -> None:
            if not engines:
                engines.append(engine)
                loop.add_reader(pipe.fileno(), on_message)
            stats = engine.stats
            pipe.send(
                (
                    "progress",
                    {
                        "count": stats.ok + stats.error_count,
                        "errors": stats.error_count,
                        "warming": not engine.measuring,
                        "histogram": stats.histogram.to_json(),
                    },
                )
            )

        try:
            return await _run_engine(settings, target, tick, False)
        finally:
            if engines:
                loop.remove_reader(pipe.fileno())

    with asyncio.Runner(loop_factory=lambda: new_loop(settings.loop)) as runner:
        stats, interrupted = runner.run(main())
    pipe.send(("result", stats))
    pipe.close()


def _run_processes(
    settings: Settings, progress: Progress | None
) -> tuple[list[dict[str, Any]], bool]:
    Target.from_settings(settings)  # fail here, once, on a bad URL or certificate
    ctx = multiprocessing.get_context("spawn")
    parts = settings.processes
    barrier = ctx.Barrier(parts)
    pipes: list[Connection] = []
    procs = []
    for i in range(parts):
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_worker,
            args=(settings.share(i, parts), theirs, barrier),
            name=f"load-{i}",
            daemon=True,
        )
        proc.start()
        theirs.close()
        pipes.append(ours)
        procs.append(proc)
    interrupted = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True
        for p in pipes:
            try:
                p.send("stop")
            except OSError:
                pass

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, on_sigint)
    results: dict[int, dict[str, Any]] = {}
    latest: dict[int, dict[str, Any]] = {}
    rate = _Rate()
    started = time.perf_counter()
    last_print = started
    try:
        open_pipes = {p: i for i, p in enumerate(pipes)}
        while open_pipes:
            for p in wait(list(open_pipes), timeout=1.0):
                i = open_pipes[p]  # type: ignore[index]
                try:
                    kind, payload = p.recv()  # type: ignore[union-attr]
                except EOFError:
                    del open_pipes[p]  # type: ignore[arg-type]
                    continue
                if kind == "progress":
                    latest[i] = payload
                else:
                    results[i] = payload
                    del open_pipes[p]  # type: ignore[arg-type]
            now = time.perf_counter()
            if progress is not None and latest and now - last_print >= 1.0:
                last_print = now
                merged = Histogram()
                for part in latest.values():
                    merged.merge(Histogram.from_json(part["histogram"]))
                count = sum(part["count"] for part in latest.values())
                progress(
                    now - started,
                    rate.update(count),
                    merged.percentile(99),
                    sum(part["errors"] for part in latest.values()),
                    any(part["warming"] for part in latest.values()),
                )
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        for proc in procs:
            proc.join(10)
            if proc.is_alive():  # pragma: no cover - a stuck child
                proc.kill()
                proc.join()
        for p in pipes:
            p.close()
    missing = [i for i in range(parts) if i not in results]
    if missing:
        raise RuntimeError(f"load process(es) {missing} ended without results")
    return [results[i] for i in range(parts)], interrupted


def run(settings: Settings, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run a load test and return its result (see ``report.build_result``).

    Args:
        settings: what to run.
        progress: called about once a second with (elapsed s, requests/s, p99 µs, errors,
            warming up).

    Raises:
        ValueError: a bad URL or setting.
        CertificateError: ``ca``/``cert``/``key`` cannot be loaded.
    """
    if settings.connections < 1:
        raise ValueError(f"connections must be at least 1, not {settings.connections}")
    if settings.processes < 1:
        raise ValueError(f"processes must be at least 1, not {settings.processes}")
    if settings.processes > settings.connections:
        raise ValueError(
            "each process needs a connection: use at least as many connections "
            f"(-c) as processes (-p {settings.processes})"
        )
    if settings.rate is not None and settings.rate <= 0:
        raise ValueError(f"rate must be positive, not {settings.rate}")
    if settings.duration is None and settings.requests is None:
        raise ValueError("give a duration (-d) or a request count (-n)")
    if settings.processes == 1:
        stats, interrupted = _run_single(settings, progress)
        parts = [stats]
    else:
        parts, interrupted = _run_processes(settings, progress)
    return build_result(settings.to_json(), parts, interrupted)


# --- the command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="Load-test an HTTPS server: closed loop (back to back) or open loop "
        "(--rate, coordinated omission corrected).",
    )
    p.add_argument("url", help="https://host:port/path (http:// too)")
    p.add_argument("-c", "--connections", type=int, default=64, help="connections (default 64)")
    p.add_argument(
        "-d",
        "--duration",
        type=parse_duration,
        help="how long to measure: 30s, 2m (default 10s unless -n)",
    )
    p.add_argument("-n", "--requests", type=int, help="measure this many requests, then stop")
    p.add_argument(
        "-w",
        "--warmup",
        type=parse_duration,
        default=1.0,
        help="load first for this long without measuring (default 1s)",
    )
    p.add_argument(
        "-r",
        "--rate",
        type=float,
        help="open loop: this many requests/s in all, latency from when each was due",
    )
    p.add_argument(
        "--new-connection",
        action="store_true",
        help="a new TCP+TLS connection per request (full handshakes, no resumption)",
    )
    p.add_argument("-m", "--method", help="GET, or POST when a body is given")
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    p.add_argument("-b", "--body", help="request body: @FILE, a size (1MiB), or text")
    p.add_argument("--ca", help="trust this CA certificate (PEM) instead of the system's")
    p.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--key", help="the client certificate's key")
    p.add_argument(
        "-t",
        "--timeout",
        type=parse_duration,
        default=10.0,
        help="count a request as a timeout after this long (default 10s)",
    )
    p.add_argument(
        "--fail-status", action="store_true", help="count answers with status >= 500 as errors"
    )
    p.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="load processes, one per core to use (default 1)",
    )
    p.add_argument("--loop", choices=LOOPS, default="uvloop")
    p.add_argument("--json", metavar="FILE", help="write the full result, histogram included")
    p.add_argument(
        "--plot", metavar="FILE.png", help="write a latency percentile chart (needs matplotlib)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return p


def _body(text: str | None) -> bytes:
    if text is None:
        return b""
    if text.startswith("@"):
        with open(text[1:], "rb") as f:
            return f.read()
    try:
        return b"x" * parse_size(text)
    except ValueError:
        return text.encode()


def settings_from_args(argv: Sequence[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Parse the command line into ``Settings`` (and the output options)."""
    parser = _parser()
    args = parser.parse_args(argv)
    headers = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            parser.error(f"a header must be 'Name: value', not {h!r}")
        headers.append((name.strip(), value.strip()))
    try:
        body = _body(args.body)
    except OSError as exc:
        parser.error(f"cannot read the body file: {exc}")
    if (args.cert is None) != (args.key is None) and args.key is not None:
        parser.error("--key needs --cert")
    duration = args.duration
    if duration is None and args.requests is None:
        duration = 10.0
    settings = Settings(
        url=args.url,
        connections=args.connections,
        duration=duration,
        requests=args.requests,
        warmup=args.warmup,
        rate=args.rate,
        new_connection=args.new_connection,
        method=(args.method or ("POST" if args.body is not None else "GET")).upper(),
        headers=headers,
        body=body,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        timeout=args.timeout,
        fail_status=args.fail_status,
        processes=args.processes,
        loop=args.loop,
    )
    return settings, args


def _terminal_progress(out: TextIO) -> Progress:
    def show(elapsed: float, rps: float, p99: int, errors: int, warming: bool) -> None:
        out.write("\r" + format_progress(elapsed, rps, p99, errors, warming) + "\x1b[K")
        out.flush()

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 when any request failed)."""
    settings, args = settings_from_args(argv)
    progress = None
    if not args.quiet and sys.stderr.isatty():
        progress = _terminal_progress(sys.stderr)
    try:
        result = run(settings, progress=progress)
    except (ValueError, OSError) as exc:
        print(f"load: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith("framework"):
            print(f"load: error: {exc}", file=sys.stderr)
            return 2
        raise
    if progress is not None:
        sys.stderr.write("\r\x1b[K")
    print(format_summary(result))
    if args.json:
        write_json(result, args.json)
        print(f"  full result in {args.json}")
    if args.plot:
        note = write_plot([(settings.url, result)], args.plot)
        print(f"  {note}" if note else f"  latency chart in {args.plot}")
    return 1 if result["error_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
