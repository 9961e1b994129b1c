"""Running a load test: one process, or ``--processes`` of them, and the live progress.

Each process runs an ``Engine`` on its own event loop with its share of the connections (and of
the rate or count), sends its counts to the parent every second and its histogram at the end,
and the parent merges them. ``run()`` does the whole thing as a function, for scripts and tests;
``cli.py`` is the command line around it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from .engine import Engine
from .histogram import Histogram
from .report import build_result
from .settings import Settings, Target

__all__ = ["LOOPS", "Progress", "new_loop", "run"]

#: Called about once a second with (elapsed s, requests/s, p99 µs, errors, warming up).
Progress = Callable[[float, float, int, int, bool], None]

LOOPS = ("uvloop", "asyncio")


def new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop: ``"uvloop"``'s (asyncio's where uvloop is not installed) or asyncio's.

    Raises:
        ValueError: ``name`` is not one of ``LOOPS``.
    """
    if name not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, not {name!r}")
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
            return asyncio.new_event_loop()
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


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
    """Requests per second over the last tick, from running totals that restart once.

    The engine's counts restart at zero when the warm-up ends, which may be between two ticks:
    the first measured tick counts from the end of the warm-up, not from the previous tick (when
    the warm-up's higher count was seen).
    """

    def __init__(self, warmup: float, now: float | None = None) -> None:
        self.last_count = 0
        self.last_time = time.perf_counter() if now is None else now
        self.measuring_from = self.last_time + warmup
        self.warming = warmup > 0

    def update(self, count: int, warming: bool, now: float | None = None) -> float:
        """The rate since the last call, given the total so far and the phase it belongs to."""
        now = time.perf_counter() if now is None else now
        if self.warming and not warming:  # the counts restarted when measuring began
            self.warming = False
            self.last_count = 0
            self.last_time = min(max(self.last_time, self.measuring_from), now)
        elif count < self.last_count:  # processes restarting one by one (--processes)
            self.last_count = 0
        rate = (count - self.last_count) / max(1e-9, now - self.last_time)
        self.last_count, self.last_time = count, now
        return rate


def _run_single(settings: Settings, progress: Progress | None) -> tuple[dict[str, Any], bool]:
    target = Target.from_settings(settings)
    started = time.perf_counter()
    rate = _Rate(settings.warmup, started)

    def tick(engine: Engine) -> None:
        assert progress is not None
        stats = engine.stats
        count = stats.ok + stats.error_count
        progress(
            time.perf_counter() - started,
            rate.update(count, not engine.measuring),
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
    started = time.perf_counter()
    rate = _Rate(settings.warmup, started)
    last_print = started
    try:
        open_pipes = {p: i for i, p in enumerate(pipes)}
        while open_pipes:
            # wait() hands back the objects it was given: here, only pipes.
            ready = cast(list[Connection], wait(list(open_pipes), timeout=1.0))
            for p in ready:
                i = open_pipes[p]
                try:
                    kind, payload = p.recv()
                except EOFError:
                    del open_pipes[p]
                    continue
                if kind == "progress":
                    latest[i] = payload
                else:
                    results[i] = payload
                    del open_pipes[p]
            now = time.perf_counter()
            if progress is not None and latest and now - last_print >= 1.0:
                last_print = now
                merged = Histogram()
                for part in latest.values():
                    merged.merge(Histogram.from_json(part["histogram"]))
                count = sum(part["count"] for part in latest.values())
                warming = any(part["warming"] for part in latest.values())
                progress(
                    now - started,
                    rate.update(count, warming, now),
                    merged.percentile(99),
                    sum(part["errors"] for part in latest.values()),
                    warming,
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
