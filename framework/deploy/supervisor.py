"""``serve --workers N``: one supervising process and N worker processes.

The supervisor makes the listening sockets (one ``SO_REUSEPORT`` socket per worker slot on
Linux, so the kernel spreads connections evenly; shared ones otherwise), then starts each
worker as ``python -m framework serve ...`` again with its sockets and a pipe. It never
imports the app, so a rolling restart loads new code. It keeps each slot's socket open
itself: a replacement worker takes over the same socket, and connections that arrived
meanwhile wait in its backlog instead of being refused.

- A worker that exits unexpectedly is replaced, after a back-off that doubles while workers
  die young; after ``MAX_START_FAILURES`` workers in a row die before serving, the supervisor
  gives up (exit status 3), or at once with status 2 when the first worker reported a usage
  or configuration error.
- SIGHUP is forwarded to every worker (each re-reads its certificates); systemd is told
  ``RELOADING=1`` then ``READY=1`` once every worker reported back.
- SIGUSR2 restarts the workers one slot at a time: a new worker on the slot's socket, and
  once it serves the old one drains; at no moment does nobody accept.
- SIGTERM/SIGINT drain every worker (a second one stops them at once); exit status 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .. import limits
from .systemd import Notifier
from .worker import HEARTBEAT_INTERVAL, WORKER_ENV, status_line

__all__ = ["MAX_START_FAILURES", "Supervisor"]

log = logging.getLogger("framework.deploy")

#: Workers in a row that may die before serving before the supervisor gives up.
MAX_START_FAILURES = 5
#: The first replacement's delay, doubled for each worker that died young, up to the maximum.
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0
#: A worker that served this long died of something else than its start: back-off resets.
BACKOFF_RESET = 10.0
#: How long a new worker may take to serve before it counts as failed.
WORKER_START_TIMEOUT = 60.0
#: How long workers may take to report a SIGHUP reload.
RELOAD_TIMEOUT = 10.0
#: Beyond --graceful-timeout, how long a draining worker may take to exit before SIGKILL.
EXIT_MARGIN = 5.0

EXIT_OK, EXIT_USAGE, EXIT_STARTUP = 0, 2, 3


@dataclass(eq=False)
class Worker:
    """One worker process and what its pipe said."""

    slot: int
    process: asyncio.subprocess.Process
    pipe: int
    started: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    retiring: bool = False
    last_beat: float = field(default_factory=time.monotonic)
    connections: int = 0
    requests: int = 0
    buffer: bytes = b""

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Runs ``workers`` worker processes of ``framework serve ARGV`` until a stop signal.

    Args:
        argv: the ``framework`` command line's arguments (``serve MODULE:ATTR ...``).
        per_slot: each worker slot's own sockets (``deploy.sockets.open_listeners``).
        shared: the sockets every worker listens on.
        notifier: systemd's notification socket, when there is one.
        graceful_timeout: the workers' drain bound (``--graceful-timeout``).
        announce: the start-up line's URL and the lines that follow it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        per_slot: Sequence[Sequence[socket.socket]],
        shared: Sequence[socket.socket],
        *,
        notifier: Notifier | None = None,
        graceful_timeout: float = limits.GRACEFUL_SHUTDOWN_TIMEOUT,
        announce: Sequence[str] = (),
        out: TextIO = sys.stderr,
    ) -> None:
        self.argv = list(argv)
        self.per_slot = [list(s) for s in per_slot]
        self.shared = list(shared)
        self.notifier = notifier
        self.graceful_timeout = graceful_timeout
        self.announce = list(announce)
        self.out = out
        self.workers: list[Worker] = []
        self._failures = 0  # workers in a row that died before serving
        self._backoff = [0.0] * len(self.per_slot)
        self._respawns: dict[int, asyncio.TimerHandle] = {}
        self._stopping = False
        self._exit_status = EXIT_OK
        self._serving = False  # every slot served once
        self._busy: asyncio.Task[None] | None = None  # a reload or rolling restart
        self._done: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def run(self) -> int:
        """Supervise until stopped; the exit status."""
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._start_job, self._reload, "reload")
        loop.add_signal_handler(signal.SIGUSR2, self._start_job, self._roll, "rolling restart")
        for slot in range(len(self.per_slot)):
            self._later(self._spawn(slot))
        timer = loop.call_later(HEARTBEAT_INTERVAL, self._tick)
        try:
            return await self._done
        finally:
            timer.cancel()
            for handle in self._respawns.values():
                handle.cancel()
            for sock in self.shared + [s for slot in self.per_slot for s in slot]:
                sock.close()
            if self.notifier is not None:
                self.notifier.close()

    def _later(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, slot: int) -> Worker:
        self._respawns.pop(slot, None)
        read, write = os.pipe()
        os.set_blocking(read, False)
        fds = [s.fileno() for s in self.shared + self.per_slot[slot]]
        env = dict(os.environ)
        env[WORKER_ENV] = f"fds={','.join(map(str, fds))};pipe={write}"
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "framework",
                *self.argv,
                pass_fds=(*fds, write),
                stdin=subprocess.DEVNULL,
                # Its own process group: Ctrl-C reaches the supervisor only, which drains the
                # workers once, instead of each worker also taking it as a second signal.
                process_group=0,
                env=env,
            )
        finally:
            os.close(write)
        worker = Worker(slot, process, read)
        self.workers.append(worker)
        loop = asyncio.get_running_loop()
        loop.add_reader(read, self._read, worker)
        self._later(self._watch(worker))
        loop.call_later(WORKER_START_TIMEOUT, self._start_deadline, worker)
        log.debug("worker %d started for slot %d", worker.pid, slot)
        return worker

    def _start_deadline(self, worker: Worker) -> None:
        if not worker.ready.is_set() and not worker.exited.is_set():
            log.error(
                "worker %d did not serve within %.0f s; killing it",
                worker.pid,
                WORKER_START_TIMEOUT,
            )
            worker.process.kill()

    def _read(self, worker: Worker) -> None:
        try:
            data = os.read(worker.pipe, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(worker.pipe)
            os.close(worker.pipe)
            return
        *lines, worker.buffer = (worker.buffer + data).split(b"\n")
        for line in lines:
            self._heard(worker, line.decode(errors="replace").split())

    def _heard(self, worker: Worker, words: list[str]) -> None:
        if not words:
            return
        what = words[0]
        worker.last_beat = time.monotonic()
        if what == "READY":
            worker.ready.set()
            self._failures = 0
            self._check_serving()
        elif what == "STATS" and len(words) == 3:
            worker.connections, worker.requests = int(words[1]), int(words[2])
        elif what in ("RELOADED", "RELOAD-FAILED"):
            worker.reloaded.set()

    def _check_serving(self) -> None:
        if self._serving or self._stopping:
            return
        slots = {w.slot for w in self.workers if w.ready.is_set()}
        if len(slots) < len(self.per_slot):
            return
        self._serving = True
        count = len(self.per_slot)
        lines = list(self.announce)
        if lines:
            lines[0] += f" with {count} workers, supervisor pid {os.getpid()}"
            lines[0] += " (press Ctrl-C to stop)"
        print("\n".join(lines), file=self.out, flush=True)
        if self.notifier is not None:
            self.notifier.ready(self._status())

    def _status(self) -> str:
        serving = [w for w in self.workers if w.ready.is_set() and not w.retiring]
        return status_line(
            len(serving), sum(w.connections for w in serving), sum(w.requests for w in self.workers)
        )

    def _tick(self) -> None:
        notifier = self.notifier
        loop = asyncio.get_running_loop()
        if notifier is not None and self._serving:
            notifier.status(self._status())
            interval = notifier.watchdog_interval
            # The watchdog speaks for the workers too: every serving worker beat lately.
            fresh = max(3 * HEARTBEAT_INTERVAL, interval or 0.0)
            now = time.monotonic()
            serving = [w for w in self.workers if w.ready.is_set() and not w.retiring]
            if interval is not None and all(now - w.last_beat < fresh for w in serving):
                notifier.watchdog()
        every = min(HEARTBEAT_INTERVAL, (notifier.watchdog_interval or 1.0) if notifier else 1.0)
        loop.call_later(every, self._tick)

    async def _watch(self, worker: Worker) -> None:
        worker.status = await worker.process.wait()
        worker.exited.set()
        self.workers.remove(worker)
        self._exited(worker)

    def _exited(self, worker: Worker) -> None:
        status = worker.status
        assert status is not None
        how = f"status {status}" if status >= 0 else f"signal {signal.Signals(-status).name}"
        if self._stopping or worker.retiring:
            log.debug("worker %d exited (%s)", worker.pid, how)
            if self._stopping and not self.workers:
                self._finish(EXIT_OK)
            return
        lived = time.monotonic() - worker.started
        if not worker.ready.is_set():
            self._failures += 1
            if status == EXIT_USAGE and not self._serving:
                self._give_up(
                    EXIT_USAGE, "the worker refused its configuration (see above); not retrying"
                )
                return
            if self._failures >= MAX_START_FAILURES:
                self._give_up(
                    EXIT_STARTUP,
                    f"workers keep exiting before they serve ({self._failures} in a row, the "
                    f"last with {how}); see the errors above",
                )
                return
        if any(w.slot == worker.slot and not w.retiring for w in self.workers):
            return  # a newer worker already serves this slot (a rolling restart's)
        previous = self._backoff[worker.slot]
        delay = BACKOFF_FIRST if lived >= BACKOFF_RESET or not previous else previous * 2
        delay = self._backoff[worker.slot] = min(delay, BACKOFF_MAX)
        log.warning(
            "worker %d exited unexpectedly (%s) after %.1f s; starting another in %.1f s",
            worker.pid,
            how,
            lived,
            delay,
        )
        loop = asyncio.get_running_loop()
        self._respawns[worker.slot] = loop.call_later(
            delay, lambda: self._later(self._spawn(worker.slot))
        )

    def _give_up(self, status: int, message: str) -> None:
        print(f"framework: error: {message}", file=self.out, flush=True)
        self._drain_all(signal.SIGTERM, status)

    def _stop(self, signum: int) -> None:
        if self._stopping:
            log.warning("second %s: stopping the workers at once", signal.Signals(signum).name)
            for worker in self.workers:
                worker.process.send_signal(signal.SIGINT)
            return
        log.info("stopping: draining %d workers", len(self.workers))
        self._drain_all(signal.SIGTERM, EXIT_OK)

    def _drain_all(self, signum: int, status: int) -> None:
        self._stopping = True
        self._exit_status = status
        if self.notifier is not None:
            self.notifier.stopping()
        for handle in self._respawns.values():
            handle.cancel()
        self._respawns.clear()
        if self._busy is not None:
            self._busy.cancel()
        for worker in self.workers:
            worker.process.send_signal(signum)
        if not self.workers:
            self._finish(status)
            return
        asyncio.get_running_loop().call_later(self.graceful_timeout + EXIT_MARGIN, self._kill_left)

    def _kill_left(self) -> None:
        for worker in self.workers:
            log.error("worker %d still running after the drain; killing it", worker.pid)
            worker.process.kill()

    def _finish(self, status: int) -> None:
        status = self._exit_status
        if self._done is not None and not self._done.done():
            self._done.set_result(status)

    def _start_job(self, job: object, name: str) -> None:
        if self._stopping:
            return
        if self._busy is not None and not self._busy.done():
            log.warning("%s asked for while one is under way; ignored", name)
            return
        self._busy = asyncio.ensure_future(job())  # type: ignore[operator]

    async def _reload(self) -> None:
        workers = [w for w in self.workers if w.ready.is_set() and not w.retiring]
        log.info("SIGHUP: reloading the certificates in %d workers", len(workers))
        if self.notifier is not None:
            self.notifier.reloading()
        for worker in workers:
            worker.reloaded.clear()
            worker.process.send_signal(signal.SIGHUP)
        waits = [asyncio.ensure_future(w.reloaded.wait()) for w in workers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=RELOAD_TIMEOUT)
            for wait in pending:
                wait.cancel()
        if self.notifier is not None:
            self.notifier.ready(self._status())

    async def _roll(self) -> None:
        log.info("SIGUSR2: restarting the %d workers one at a time", len(self.per_slot))
        for slot in range(len(self.per_slot)):
            old = [w for w in self.workers if w.slot == slot and not w.retiring]
            new = await self._spawn(slot)
            ready = asyncio.ensure_future(new.ready.wait())
            exited = asyncio.ensure_future(new.exited.wait())
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            exited.cancel()
            if not new.ready.is_set():
                log.error(
                    "rolling restart stopped: the new worker %d exited (status %s) before "
                    "serving; the old workers serve on",
                    new.pid,
                    new.status,
                )
                return
            for worker in old:
                worker.retiring = True
                worker.process.send_signal(signal.SIGTERM)
            for worker in old:
                try:
                    await asyncio.wait_for(
                        worker.exited.wait(), self.graceful_timeout + EXIT_MARGIN
                    )
                except TimeoutError:
                    worker.process.kill()
        log.info("rolling restart done: %d new workers serve", len(self.per_slot))
