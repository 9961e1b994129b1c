"""The pool that shares the client's connections between requests, and the ``Connector``.

``ConnectionPool`` bounds connections in total and per origin, hands out the most recently used
idle one, and queues requests beyond the bound. ``Connector`` opens connections (TCP, then TLS)
and explains failed handshakes. Neither knows about URLs, redirects, content decoding or the
response object the caller sees (``client.py``, ``response.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from typing import Any

from .. import limits, tls
from ..errors import (
    ClientError,
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ServerDisconnectedError,
    TLSError,
)
from .connection import ACTIVE, CLOSED, IDLE, ClientConnection, Origin

# ClientConnection and Origin live in connection.py; this module exported them first.
__all__ = ["ClientConnection", "ConnectionPool", "Connector", "Origin"]


# --- connecting -------------------------------------------------------------------------------


class Connector:
    """Opens connections: TCP (to a pinned address when ``resolve`` names one), then TLS.

    Args:
        ssl_context: the context for ``https`` origins (never modified).
        resolve: host name (or ``"host:port"``) to the address to connect to instead; the
            certificate is still checked against the name, as ``curl --resolve`` does.
        max_header_bytes: the largest response head accepted.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolve: Mapping[str, str] | None = None,
        max_header_bytes: int = limits.CLIENT_MAX_HEADER_BYTES,
    ) -> None:
        self.ssl_context = ssl_context
        self.resolve = {key.lower(): value.strip("[]") for key, value in (resolve or {}).items()}
        self.max_header_bytes = max_header_bytes

    def address(self, origin: Origin) -> str:
        """The address to connect to for ``origin``."""
        resolve = self.resolve
        if resolve:
            pinned = resolve.get(f"{origin.host}:{origin.port}") or resolve.get(origin.host)
            if pinned is not None:
                return pinned
        return origin.host

    async def connect(
        self, pool: ConnectionPool, origin: Origin, connect_timeout: float | None
    ) -> ClientConnection:
        """A new connection to ``origin``, handshake done.

        Raises:
            ConnectTimeout: TCP and TLS took longer than ``connect_timeout``.
            CertificateVerifyError: the certificate is not trusted for the host.
            TLSError: the handshake failed otherwise.
            ConnectError: the TCP connection failed (refused, unreachable, unknown name).
        """
        loop = pool.loop
        conn = ClientConnection(pool, origin, self.max_header_bytes)
        address = self.address(origin)
        kwargs: dict[str, Any] = {}
        if origin.scheme == "https":
            if self.ssl_context is None:  # pragma: no cover - the client always supplies one
                raise ConnectError("no TLS context for an https origin")
            # The loop's handshake timeout is a backstop; ours (below) covers TCP and TLS.
            handshake = (
                limits.TLS_HANDSHAKE_TIMEOUT if connect_timeout is None else connect_timeout + 1.0
            )
            # server_hostname is the name, not the pinned address. For an IP literal the ssl
            # module sends no SNI and checks the certificate's IP address entries instead.
            kwargs = {
                "ssl": self.ssl_context,
                "server_hostname": origin.host,
                "ssl_handshake_timeout": handshake,
                "ssl_shutdown_timeout": limits.CLIENT_CLOSE_TIMEOUT,
            }
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.create_connection(lambda: conn, address, origin.port, **kwargs)
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"connecting to {origin} took longer than {connect_timeout} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            names: list[str] = []
            if tls.is_name_mismatch(exc):
                names = await _peer_names(address, origin, connect_timeout)
            raise tls.verify_error(exc, origin.host, names, address) from exc
        except ssl.SSLError as exc:
            raise tls.handshake_error(exc, str(origin)) from exc
        except OSError as exc:
            where = origin if address == origin.host else f"{origin} (at {address})"
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {where}: {reason}") from exc
        if kwargs:
            alpn = conn.transport.get_extra_info("ssl_object").selected_alpn_protocol()  # type: ignore[union-attr]
            if alpn not in (None, "http/1.1"):  # pragma: no cover - we offer only http/1.1
                conn.abort()
                raise TLSError(f"{origin} chose {alpn!r} by ALPN; only http/1.1 is spoken")
        return conn


async def _peer_names(address: str, origin: Origin, connect_timeout: float | None) -> list[str]:
    """The names in the server's certificate, for the hint after a host name mismatch.

    A second handshake fetches the certificate without trusting it; nothing is sent on that
    connection and nothing in it is believed beyond the names quoted in the error message.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout or limits.CLIENT_CONNECT_TIMEOUT):
            transport, _ = await loop.create_connection(
                asyncio.Protocol,
                address,
                origin.port,
                ssl=context,
                server_hostname=origin.host,
            )
    except (OSError, TimeoutError):
        return []
    try:
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        transport.abort()
    return tls.certificate_names(der) if der else []


# --- the pool -----------------------------------------------------------------------------------


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
            if conn.state is IDLE and now < conn.expires_at and not conn._eof:
                conn.state = ACTIVE
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
            conn = await self.connector.connect(self, origin, connect_timeout)
        except BaseException:
            self._unreserve(origin)
            raise
        self._connections.add(conn)
        if conn.state is CLOSED:  # pragma: no cover - lost between handshake and here
            self._connections.discard(conn)
            self._unreserve(origin)
            raise ServerDisconnectedError(f"{origin} closed the connection at once")
        conn.state = ACTIVE
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
        conn.state = IDLE
        conn.idle_since = now
        conn.expires_at = now + conn.keep_alive_expiry
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
        """Called by a connection once its transport is gone."""
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
            if conn.state is not CLOSED:
                conn.state = CLOSED
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
