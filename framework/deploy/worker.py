"""What a serving process tells the world: systemd (one process) or its supervisor (a worker).

``serve()`` calls a ``ProcessEvents`` when the server serves, around a SIGHUP reload, and
when it begins to stop. ``SystemdEvents`` turns those into sd_notify lines (with the watchdog
and a ``STATUS=`` line kept current). ``SupervisorLink`` is a worker's side of the pipe to
``deploy.supervisor``: a line when it serves, after each reload, and once a second its
connection and request counts (the heartbeat the supervisor's watchdog and status read).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import MutableMapping

from ..server import Server
from .run import ProcessEvents
from .sockets import inherited_socket
from .systemd import Notifier

__all__ = ["WORKER_ENV", "ProcessEvents", "SupervisorLink", "SystemdEvents", "status_line"]

log = logging.getLogger("framework.deploy")

#: The variable a supervisor sets for its workers: ``fds=3,4;pipe=7``.
WORKER_ENV = "FRAMEWORK_WORKER"
#: Seconds between a worker's heartbeats, and between STATUS= updates.
HEARTBEAT_INTERVAL = 1.0


def status_line(workers: int, connections: int, requests: int) -> str:
    """The ``STATUS=`` text: ``2 workers, 5 connections, 1200 requests served``."""
    noun = "worker" if workers == 1 else "workers"
    return f"{workers} {noun}, {connections} connections, {requests} requests served"


class SystemdEvents:
    """A single server process's notifications to systemd."""

    announce = True

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._server: Server | None = None
        self._timers: list[asyncio.TimerHandle] = []

    def _status(self) -> str:
        server = self._server
        assert server is not None
        return status_line(1, len(server.connections), server.requests_served)

    def ready(self, server: Server) -> None:
        self._server = server
        self.notifier.ready(self._status())
        loop = asyncio.get_running_loop()
        self._repeat(loop, HEARTBEAT_INTERVAL * 5, lambda: self.notifier.status(self._status()))
        interval = self.notifier.watchdog_interval
        if interval is not None:
            self._repeat(loop, interval, self.notifier.watchdog)

    def _repeat(self, loop: asyncio.AbstractEventLoop, every: float, call: object) -> None:
        index = len(self._timers)

        def tick() -> None:
            call()  # type: ignore[operator]
            self._timers[index] = loop.call_later(every, tick)

        self._timers.append(loop.call_later(every, tick))

    def reloading(self) -> None:
        self.notifier.reloading()

    def reloaded(self, ok: bool) -> None:
        self.notifier.ready(self._status() if self._server is not None else None)

    def stopping(self) -> None:
        # The watchdog goes on while draining: a drain within --graceful-timeout is not a hang.
        self.notifier.stopping()


class SupervisorLink:
    """A worker's pipe to its supervisor (descriptor ``pipe``), written a line at a time."""

    announce = False

    def __init__(self, pipe: int) -> None:
        self.pipe = pipe
        self._server: Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._orphaned = False

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None
    ) -> tuple[list[socket.socket], SupervisorLink] | None:
        """The sockets and pipe a supervisor handed this worker, or ``None`` (not a worker).

        The variable is removed, so that the app's own child processes are not workers.
        """
        env = os.environ if environ is None else environ
        text = env.pop(WORKER_ENV, None)
        if text is None:
            return None
        fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        fds = [int(fd) for fd in fields.get("fds", "").split(",") if fd]
        pipe = int(fields["pipe"])
        os.set_inheritable(pipe, False)
        sockets = []
        for fd in fds:
            os.set_inheritable(fd, False)
            sockets.append(inherited_socket(fd))
        return sockets, cls(pipe)

    def _write(self, line: str) -> None:
        if self._orphaned:
            return
        try:
            os.write(self.pipe, line.encode() + b"\n")
        except OSError:
            # The supervisor is gone (killed): no one would replace or stop this worker, so
            # it drains and exits rather than serve on unsupervised.
            self._orphaned = True
            log.warning("the supervisor is gone; stopping this worker")
            os.kill(os.getpid(), signal.SIGTERM)

    def _beat(self) -> None:
        server = self._server
        assert server is not None
        self._write(f"STATS {len(server.connections)} {server.requests_served}")
        self._timer = asyncio.get_running_loop().call_later(HEARTBEAT_INTERVAL, self._beat)

    def ready(self, server: Server) -> None:
        self._server = server
        self._write("READY")
        self._beat()

    def reloading(self) -> None:
        pass

    def reloaded(self, ok: bool) -> None:
        self._write("RELOADED" if ok else "RELOAD-FAILED")

    def stopping(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._write("STOPPING")
