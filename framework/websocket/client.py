"""The client's side: open a WebSocket to a ``wss://`` (or ``ws://``) URL.

The opening handshake is an HTTP/1.1 request written and read by the ``http11`` driver in the
client role, over the TLS layer's client context (verification on); once ``101`` arrives the
transport goes to the same frame protocol the server uses, in the client role.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from .. import limits
from ..errors import ConnectError, RemoteProtocolError
from ..http11 import NEED_DATA, Driver, EndOfMessage, InformationalResponse, Response
from ..http11 import Request as RequestHead
from ..tls import client_context
from .connection import OPEN, WebSocket, _Frames
from .handshake import accept_key

__all__ = ["connect"]


class _Handshake(asyncio.Protocol):
    """Writes the opening request and reads the answer; then hands over to the frames."""

    def __init__(self, head: RequestHead, key: str, ws: WebSocket) -> None:
        self.driver = Driver("client")
        self.head = head
        self.key = key
        self.ws = ws
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[_Frames] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        data = self.driver.send(self.head) + self.driver.send(EndOfMessage())
        self.transport.write(data)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        driver = self.driver
        driver.receive_data(data)
        while not self.done.done():
            try:
                event = driver.next_event()
            except RemoteProtocolError as exc:
                self._fail(RemoteProtocolError(f"bad answer to the WebSocket handshake: {exc}"))
                return
            if event is NEED_DATA:
                return
            if type(event) is InformationalResponse and event.status_code == 101:
                self._switch(event)
                return
            if isinstance(event, Response):
                self._fail(
                    RemoteProtocolError(
                        f"the server refused the WebSocket handshake with {event.status_code}"
                    )
                )
                return

    def _switch(self, event: InformationalResponse) -> None:
        headers = {name.lower(): value for name, value in event.headers}
        if headers.get(b"sec-websocket-accept", b"").decode("latin-1") != accept_key(self.key):
            self._fail(RemoteProtocolError("the server's Sec-WebSocket-Accept is wrong"))
            return
        protocol = headers.get(b"sec-websocket-protocol")
        self.ws.subprotocol = protocol.decode("latin-1") if protocol else None
        trailing, _ = self.driver.trailing_data
        frames = _Frames(self.ws, client=True)
        transport = self.transport
        assert transport is not None
        transport.set_protocol(frames)
        frames.connection_made(transport)
        self.ws._frames = frames
        self.ws.state = OPEN
        self.done.set_result(frames)
        if trailing:
            frames.data_received(trailing)

    def _fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                RemoteProtocolError("the server closed the connection during the handshake")
            )
        if not self.lost.done():
            self.lost.set_result(None)

    async def release(self, within: float) -> None:
        """Close a connection that did not become a WebSocket; return once its socket is shut.

        A TLS close waits for the peer's close_notify: a caller whose loop ends at once (as
        ``asyncio.run`` does) would otherwise leave the socket open until garbage collection.
        """
        transport = self.transport
        if transport is None or self.lost.done():
            return
        transport.close()
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(self.lost)
        except TimeoutError:
            transport.abort()


class connect:  # noqa: N801 - used as a function: ``async with connect(url) as ws``
    """Open a WebSocket to ``url``; ``async with connect(url) as ws:`` closes it after.

    Args:
        url: ``wss://host[:port]/path`` (or ``ws://`` for plain TCP).
        ssl_context: the TLS client context; by default ``tls.client_context(ca)``.
        ca: trust only this CA certificate file (PEM) instead of the system's store.
        subprotocols: offered, in order of preference (``ws.subprotocol`` is the one chosen).
        headers: extra handshake headers (``Authorization``, ``Origin``...).
        timeout: seconds for the connection and the handshake.
        options: ``WebSocket``'s limits (``max_message_size``, ``ping_interval``...).

    Raises:
        ConnectError: the TCP or TLS connection failed.
        RemoteProtocolError: the server did not accept the handshake.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        ca: str | os.PathLike[str] | None = None,
        subprotocols: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float = limits.CLIENT_CONNECT_TIMEOUT,
        **options: Any,
    ) -> None:
        self.url = url
        self.ssl_context = ssl_context
        self.ca = ca
        self.subprotocols = list(subprotocols)
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.options = options
        self.ws: WebSocket | None = None

    async def open(self) -> WebSocket:
        """Connect and complete the handshake."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("wss", "ws") or not parts.hostname:
            raise ValueError(f"not a WebSocket URL: {self.url!r} (wss://host/path)")
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        host = parts.hostname
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        authority = host if parts.port is None else f"{host}:{port}"
        if ":" in host and not authority.startswith("["):
            authority = f"[{host}]:{port}"
        fields = [
            (b"host", authority.encode("idna")),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", key.encode("ascii")),
            (b"sec-websocket-version", b"13"),
        ]
        if self.subprotocols:
            fields.append((b"sec-websocket-protocol", ", ".join(self.subprotocols).encode()))
        fields += [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        ]
        head = RequestHead(b"GET", target.encode("ascii"), fields)
        ctx = None
        if secure:
            ctx = self.ssl_context or client_context(self.ca)
        ws = WebSocket(None, **self.options)
        loop = asyncio.get_running_loop()
        handshake = _Handshake(head, key, ws)
        try:
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(
                    lambda: handshake, host, port, ssl=ctx, server_hostname=host if secure else None
                )
                await handshake.done
        except RemoteProtocolError:
            await handshake.release(self.timeout)
            raise
        except (OSError, TimeoutError) as exc:
            if handshake.transport is not None:
                handshake.transport.abort()
            if isinstance(exc, ssl.SSLError):
                raise ConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
            raise ConnectError(f"cannot open a WebSocket to {host}:{port}: {exc}") from exc
        self.ws = ws
        return ws

    async def __aenter__(self) -> WebSocket:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.ws is not None:
            await self.ws.close(1000 if exc is None else 1011)
            self.ws.detach()
