"""``ConnectionPool``: the client's connections, shared between requests.

The pool bounds connections in total and per origin, hands out the most recently used idle
one, and queues requests beyond the bound. It opens connections through a ``Connector`` and
knows nothing of URLs, redirects, content decoding or the response object the caller sees
(``client.py``, ``response.py``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from .. import limits
from ..errors import ClientError, PoolTimeout, ServerDisconnectedError
from .connection import ACTIVE, CLOSED, IDLE, ClientConnection, Origin
from .connector import Connector

__all__ = ["ConnectionPool"]


class _Waiter:
    __slots__ = ("origin", "future")

    def __init__(self, origin: Origin, future: asyncio.Future[ClientConnection | None]) -> None:
        self.origin = origin
        self.future = future


class ConnectionPool:
    """Connections shared between requests, bounded in total and per origin.

    A request takes the most recently used idle connection of its origin, or opens one while
    under both bounds, or waits (first come, first served) up to its pool timeout. Idle
    connections expire after ``keep_alive_expiry`` (or the server's ``Keep-Alive: timeout=``
    hint less a margin) and leave the pool as soon as the server closes them.

    Counters: ``num_connections`` (open or opening), ``num_active`` (carrying a request),
    ``num_idle``, ``num_waiting`` (requests queued for a connection).

    Args:
        connector: opens new connections.
        max_connections: the most connections open at once.
        max_connections_per_host: the most open at once to one origin.
        keep_alive_expiry: seconds an idle connection is kept.
    """

    def __init__(
        self,
        connector: Connector,
        *,
        max_connections: int = limits.CLIENT_MAX_CONNECTIONS,
        max_connections_per_host: int = limits.CLIENT_MAX_CONNECTIONS_PER_HOST,
        keep_alive_expiry: float = limits.CLIENT_KEEP_ALIVE_EXPIRY,
    ) -> None:
        if max_connections < 1 or max_connections_per_host < 1:
            raise ValueError(
                f"max_connections ({max_connections}) and max_connections_per_host "
                f"({max_connections_per_host}) must be at least 1"
            )
        self.connector = connector
        self.max_connections = max_connections
        self.max_connections_per_host = max_connections_per_host
        self.keep_alive_expiry = keep_alive_expiry
        self.loop = asyncio.get_running_loop()
        self._idle: dict[Origin, list[ClientConnection]] = {}
        self._per_origin: dict[Origin, int] = {}
        self._connections: set[ClientConnection] = set()
        self._waiters: deque[_Waiter] = deque()
        self.num_connections = 0
        self.num_active = 0
        self.is_closed = False

    @property
    def num_idle(self) -> int:
        """Connections open and waiting for a request."""
        return sum(len(idle) for idle in self._idle.values())

    @property
    def num_waiting(self) -> int:
        """Requests queued for a connection."""
        return len(self._waiters)

    # --- taking -------------------------------------------------------------------------------

    def take_idle(self, origin: Origin) -> ClientConnection | None:
        """The most recently used live idle connection to ``origin``, or ``None`` (no wait)."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()  # the most recently used: likeliest to be alive and warm
            if conn.reuse(now):
                self.num_active += 1
                return conn
            self._forget(conn)
            conn.close()
        return None

    def _has_room(self, origin: Origin) -> bool:
        if self._per_origin.get(origin, 0) >= self.max_connections_per_host:
            return False
        if self.num_connections >= self.max_connections:
            # Full: make room by closing the least recently used idle connection elsewhere.
            return self._evict_idle(origin)
        return True

    def _evict_idle(self, origin: Origin) -> bool:
        oldest: ClientConnection | None = None
        for other, idle in self._idle.items():
            if other == origin or not idle:
                continue
            if oldest is None or idle[0].idle_since < oldest.idle_since:
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        self._forget(oldest)
        oldest.close()
        return True

    def _reserve(self, origin: Origin) -> None:
        self.num_connections += 1
        self._per_origin[origin] = self._per_origin.get(origin, 0) + 1

    async def acquire(
        self, origin: Origin, *, pool_timeout: float | None, connect_timeout: float | None
    ) -> ClientConnection:
        """A connection to ``origin`` for one request; give it back with ``release()``.

        Raises:
            PoolTimeout: no connection became free within ``pool_timeout``.
            ConnectError, TLSError, CertificateVerifyError, ConnectTimeout: opening failed.
        """
        if self.is_closed:
            raise ClientError("the client is closed; make a new one")
        conn = self.take_idle(origin)
        if conn is not None:
            return conn
        if not self._waiters and self._has_room(origin):
            self._reserve(origin)
            return await self._open(origin, connect_timeout)
        future: asyncio.Future[ClientConnection | None] = self.loop.create_future()
        waiter = _Waiter(origin, future)
        self._waiters.append(waiter)
        self._grant()  # it may be served at once (another origin's idle connection evicted)
        timer = None
        if pool_timeout is not None and not future.done():
            timer = self.loop.call_later(pool_timeout, self._expire, waiter, pool_timeout)
        try:
            granted = await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                # Granted just as we were cancelled: hand it on.
                self._give_back(origin, future.result())
            else:
                self._remove_waiter(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if granted is not None:
            return granted
        return await self._open(origin, connect_timeout)

    def _expire(self, waiter: _Waiter, timeout: float) -> None:
        if not waiter.future.done():
            self._remove_waiter(waiter)
            waiter.future.set_exception(
                PoolTimeout(
                    f"no connection to {waiter.origin} became free within {timeout} s "
                    f"({self.num_connections} open, limits {self.max_connections} in total and "
                    f"{self.max_connections_per_host} per host)"
                )
            )

    def _remove_waiter(self, waiter: _Waiter) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _give_back(self, origin: Origin, granted: ClientConnection | None) -> None:
        if granted is None:
            self._unreserve(origin)
        else:
            self.release(granted)

    async def _open(self, origin: Origin, connect_timeout: float | None) -> ClientConnection:
        # A slot is reserved for this connection; it is given back if opening fails.
        try:
            conn = await self.connector.connect(
                origin,
                connect_timeout,
                on_lost=self._connection_lost,
                keep_alive_expiry=self.keep_alive_expiry,
            )
        except BaseException:
            self._unreserve(origin)
            raise
        self._connections.add(conn)
        if conn.state is CLOSED:  # pragma: no cover - lost between handshake and here
            self._connections.discard(conn)
            self._unreserve(origin)
            raise ServerDisconnectedError(f"{origin} closed the connection at once")
        conn.activate()
        self.num_active += 1
        return conn

    def _unreserve(self, origin: Origin) -> None:
        self.num_connections -= 1
        left = self._per_origin[origin] - 1
        if left:
            self._per_origin[origin] = left
        else:
            del self._per_origin[origin]
        if self._waiters:
            self._grant()

    # --- giving back --------------------------------------------------------------------------

    def release(self, conn: ClientConnection) -> None:
        """Take a connection back after its request: idle when reusable, closed otherwise."""
        if conn.state is not ACTIVE:
            if conn.state is CLOSED and conn in self._connections:
                self.num_active -= 1
                self._forget(conn)
            return
        self.num_active -= 1
        if self.is_closed or not conn.finish():
            self._forget(conn)
            conn.abort()
            return
        origin = conn.origin
        if self._waiters:
            for waiter in self._waiters:
                if waiter.origin == origin and not waiter.future.done():
                    self._waiters.remove(waiter)
                    self.num_active += 1
                    waiter.future.set_result(conn)
                    return
        now = self.loop.time()
        conn.park(now)
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle[origin] = []
        elif idle and idle[0].expires_at <= now:
            # Drop the oldest idle connection once it expires, without a timer per connection.
            stale = idle.pop(0)
            self._forget(stale)
            stale.close()
        idle.append(conn)
        if self._waiters:
            self._grant()  # waiters for other origins may use the room an idle close makes

    def _connection_lost(self, conn: ClientConnection) -> None:
        """Each connection's ``on_lost``: called once its transport is gone."""
        if conn in self._connections:
            idle = self._idle.get(conn.origin)
            if idle is not None and conn in idle:
                # The server closed an idle connection: forget it now, not at the next request.
                idle.remove(conn)
                self._forget(conn)

    def close_idle(self, origin: Origin) -> None:
        """Close the idle connections to ``origin`` (after one of them turned out dead)."""
        for conn in self._idle.pop(origin, []):
            self._forget(conn)
            conn.close()

    def _forget(self, conn: ClientConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            conn.retire()
            self._unreserve(conn.origin)

    def _grant(self) -> None:
        """Serve queued requests, in order, while connections or room allow."""
        waiters = self._waiters
        while waiters:
            for waiter in waiters:
                if waiter.future.done():
                    # Cancelled (or timed out) and not yet removed by its own task.
                    waiters.remove(waiter)
                    break
                origin = waiter.origin
                conn = self.take_idle(origin)
                if conn is not None:
                    waiters.remove(waiter)
                    waiter.future.set_result(conn)
                    break
                if self._has_room(origin):
                    waiters.remove(waiter)
                    self._reserve(origin)
                    waiter.future.set_result(None)
                    break
            else:
                return

    # --- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection (in-flight ones too) and fail queued requests."""
        if self.is_closed:
            return
        self.is_closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(ClientError("the client was closed"))
        connections = list(self._connections)
        for conn in connections:
            if conn.state is IDLE:
                conn.close()
            else:
                conn.abort()
        for conn in connections:
            await conn.wait_closed(limits.CLIENT_CLOSE_TIMEOUT + 0.5)
        for idle in self._idle.values():
            for conn in idle:
                self._forget(conn)
        self._idle.clear()

    def __repr__(self) -> str:
        state = "CLOSED" if self.is_closed else "OPEN"
        return (
            f"<ConnectionPool [{state}, connections: {self.num_connections} "
            f"({self.num_active} active, {self.num_idle} idle), waiting: {self.num_waiting}]>"
        )
