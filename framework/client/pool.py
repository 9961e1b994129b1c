"""``ConnectionPool``: the client's connections, shared between requests, and each exchange.

The pool owns a request from the moment it wants a connection until the response's head has
arrived: it takes the most recently used idle connection or opens one through a ``Connector``
(bounded in total and per origin, queueing requests beyond the bounds), writes the request,
waits for the head, and sends a request once more when a reused connection turns out dead
before answering. The connection comes back through ``release()`` once the body is read. It
knows nothing of URLs, headers, redirects, content decoding or the response object the caller
sees (``request.py``, ``client.py``, ``response.py``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable

from .. import limits
from ..errors import (
    ClientError,
    LocalProtocolError,
    PoolTimeout,
    ReadError,
    ServerDisconnectedError,
    WriteError,
)
from .connection import ACTIVE, CLOSED, IDLE, ClientConnection, Origin
from .connector import Connector
from .request import ClientRequest, Timeout

__all__ = ["ConnectionPool", "check_bounds", "closed_error"]

# Bodies larger than this are written in slices of it, waiting for the transport in between.
_SLICE = limits.WRITE_HIGH_WATER


def check_bounds(max_connections: int, max_connections_per_host: int) -> None:
    """Refuse bounds that let no connection open (the ``Client`` checks them before it starts).

    Raises:
        ValueError: a bound is below 1.
    """
    if max_connections < 1 or max_connections_per_host < 1:
        raise ValueError(
            f"max_connections ({max_connections}) and max_connections_per_host "
            f"({max_connections_per_host}) must be at least 1"
        )


def closed_error() -> ClientError:
    """The error for a request on a closed client (and so a closed pool)."""
    return ClientError("the client is closed; make a new one")


class _Waiter:
    __slots__ = ("origin", "future")

    def __init__(self, origin: Origin, future: asyncio.Future[ClientConnection | None]) -> None:
        self.origin = origin
        self.future = future


class ConnectionPool:
    """Connections shared between requests, bounded in total and per origin.

    ``send()`` carries one request from taking a connection to the response's head;
    ``release()`` takes the connection back once the body is read. A request takes the most
    recently used idle connection of its origin, or opens one while under both bounds, or
    waits (first come, first served) up to its pool timeout. Idle
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
        check_bounds(max_connections, max_connections_per_host)
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
        self._granting = False  # inside _grant(): closing a connection there must not re-enter

    @property
    def num_idle(self) -> int:
        """Connections open and waiting for a request."""
        return sum(len(idle) for idle in self._idle.values())

    @property
    def num_waiting(self) -> int:
        """Requests queued for a connection."""
        return len(self._waiters)

    # --- the exchange -------------------------------------------------------------------------

    async def send(
        self, request: ClientRequest, phases: Timeout, deadline: float | None
    ) -> ClientConnection:
        """Send ``request`` and wait for the response's head (``conn.head``).

        The connection is the most recently used idle one to the request's origin, or a new
        one, waited for up to ``phases.pool`` while the pool is full. When a reused
        connection fails before any byte of the response arrived (the server closed it as we
        reused it), a ``replayable`` request is sent once more on a new connection. The
        connection returned carries the body; give it back with ``release()``.

        Args:
            request: what to send.
            phases: the request's timeouts by phase.
            deadline: the loop time by which the whole request must be done, or ``None``.

        Raises:
            PoolTimeout: no connection became free in time.
            ConnectError, TLSError, CertificateVerifyError, ConnectTimeout: opening failed.
            WriteTimeout, ReadTimeout, TimeoutException: a phase or the deadline ran out.
            ReadError, WriteError, ServerDisconnectedError: the connection broke.
            ValueError: the request cannot be framed as given.
        """
        origin = request.origin
        fresh = False
        while True:
            if fresh:
                self._close_idle(origin)
            conn = self._take_idle(origin)
            if conn is None:
                pool_timeout, connect_timeout = phases.pool, phases.connect
                if deadline is not None:
                    left = max(deadline - self.loop.time(), 0.0)
                    pool_timeout = left if pool_timeout is None else min(pool_timeout, left)
                    connect_timeout = (
                        left if connect_timeout is None else min(connect_timeout, left)
                    )
                conn = await self.acquire(
                    origin, pool_timeout=pool_timeout, connect_timeout=connect_timeout
                )
            reused = conn.requests > 0
            try:
                prepared = request.prepared
                if prepared is not None:
                    conn.send_prepared(prepared)
                else:
                    body, stream = request.body, request.stream
                    if body is not None and len(body) > _SLICE:
                        conn.send(request.head, body[:_SLICE], False)
                        await _send_slices(conn, body, phases.write, deadline)
                    else:
                        # Head and body in one write.
                        conn.send(request.head, body, stream is None)
                        if stream is not None:
                            await _send_stream(conn, stream, phases.write, deadline)
                await conn.receive_head(phases.read, deadline)
            except (ReadError, WriteError):
                has_bytes = conn.has_response_bytes
                conn.abort()
                self.release(conn)
                if reused and not fresh and not has_bytes and request.replayable:
                    # The server closed a kept-alive connection as we reused it: nothing of
                    # the request was answered, so it is sent once more on a new connection.
                    fresh = True
                    continue
                raise
            except LocalProtocolError as exc:
                conn.abort()
                self.release(conn)
                raise ValueError(f"the request cannot be sent as given: {exc}") from exc
            except BaseException:
                conn.abort()
                self.release(conn)
                raise
            return conn

    # --- taking -------------------------------------------------------------------------------

    def _take_idle(self, origin: Origin) -> ClientConnection | None:
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
            raise closed_error()
        conn = self._take_idle(origin)
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
        now = self.loop.time()
        if self.is_closed or not conn.finish(now):
            self._forget(conn)
            conn.abort()
            return
        origin = conn.origin
        if self._waiters:
            for waiter in self._waiters:
                if waiter.origin == origin and not waiter.future.done():
                    self._waiters.remove(waiter)
                    conn.activate()
                    self.num_active += 1
                    waiter.future.set_result(conn)
                    return
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

    def _close_idle(self, origin: Origin) -> None:
        # One idle connection to ``origin`` turned out dead: the others are likely dead too.
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
        if self._granting:
            # Closing an idle connection below (expired, or evicted for room) frees a slot and
            # calls back here; the loop already running sees that room on its own.
            return
        self._granting = True
        try:
            self._grant_in_order()
        finally:
            self._granting = False

    def _grant_in_order(self) -> None:
        waiters = self._waiters
        while waiters:
            for waiter in waiters:
                if waiter.future.done():
                    # Cancelled (or timed out) and not yet removed by its own task.
                    waiters.remove(waiter)
                    break
                origin = waiter.origin
                conn = self._take_idle(origin)
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


async def _send_slices(
    conn: ClientConnection, body: bytes, write_timeout: float | None, deadline: float | None
) -> None:
    """The rest of a large body after its first slice, waiting for the transport to drain.

    One large write would go to the socket's buffer whole (encrypted, a second copy), and
    the write timeout could never apply; slices keep both bounded.
    """
    view = memoryview(body)
    size = len(body)
    for start in range(_SLICE, size, _SLICE):
        await conn.drain(write_timeout, deadline)
        conn.send_data(bytes(view[start : start + _SLICE]), end=start + _SLICE >= size)
    await conn.drain(write_timeout, deadline)


async def _send_stream(
    conn: ClientConnection,
    body: AsyncIterable[bytes | str],
    write_timeout: float | None,
    deadline: float | None,
) -> None:
    async for chunk in body:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        if data:
            conn.send_data(data)
            await conn.drain(write_timeout, deadline)
    conn.send_data(b"", end=True)
