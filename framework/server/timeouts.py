"""Per-connection timeouts of the server: one phase and one deadline per connection.

A connection is in one phase at a time: waiting for a request (``IDLE``, bounded by the
keep-alive timeout), receiving a request head (``HEAD``, bounded by the head timeout from its
first byte, against slowloris), waiting for the body its handler is reading (``BODY``, bounded
by the body inactivity timeout and the optional whole-request deadline), writing to a client
that does not read (``WRITE``, bounded by the write timeout), or handling a request (``BUSY``,
unbounded here). Entering a phase sets the connection's deadline; the server's tick sweeps
them, so no timer is scheduled per request. Nothing here knows about HTTP or sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

__all__ = ["BODY", "BUSY", "HEAD", "IDLE", "WRITE", "Deadlines", "Timed"]

#: Waiting for the next request on a kept-alive connection.
IDLE = "idle"
#: Part of a request head has arrived; the rest has not.
HEAD = "head"
#: A request is being handled.
BUSY = "busy"
#: The handler waits for request body bytes that have not arrived.
BODY = "body"
#: A response write waits for a client that does not read.
WRITE = "write"

#: The longest interval between two sweeps, in seconds.
TICK = 1.0


class Timed(Protocol):
    """What the sweep needs of a connection."""

    phase: str
    deadline: float | None

    def expire(self) -> None:
        """The deadline of the current phase passed."""


class Deadlines:
    """Sets a connection's deadline as it enters a phase, and finds the ones that passed.

    Args:
        loop: the clock.
        limits: seconds allowed per phase; a phase not listed has no deadline.
    """

    __slots__ = ("_loop", "_limits")

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: dict[str, float]) -> None:
        self._loop = loop
        self._limits = limits

    def enter(self, conn: Timed, phase: str, cap: float | None = None) -> None:
        """Put ``conn`` in ``phase``, its deadline that phase's limit from now (at most ``cap``)."""
        conn.phase = phase
        limit = self._limits.get(phase)
        deadline = None if limit is None else self._loop.time() + limit
        if cap is not None and (deadline is None or cap < deadline):
            deadline = cap
        conn.deadline = deadline

    def limit(self, phase: str) -> float | None:
        """The seconds allowed in ``phase`` (``None``: no limit)."""
        return self._limits.get(phase)

    def now(self) -> float:
        """The loop's clock, which the deadlines are on."""
        return self._loop.time()

    @property
    def interval(self) -> float:
        """How often to sweep: once a second, or twice within the shortest limit below that."""
        shortest = min(self._limits.values(), default=TICK)
        return max(0.05, min(TICK, shortest / 2))

    def sweep(self, connections: Iterable[Timed]) -> None:
        """Expire every connection whose deadline has passed."""
        now = self._loop.time()
        for conn in list(connections):
            deadline = conn.deadline
            if deadline is not None and now > deadline:
                conn.expire()
