"""``WebSocket``: one WebSocket connection, its frames driven by wsproto.

After ``accept()`` the server writes ``101 Switching Protocols`` and hands its transport to
a ``_Frames`` protocol: wsproto turns bytes into events and events into bytes, as h11 does
for HTTP/1.1. Received messages wait in a bounded queue (reading pauses when it is full, so a
slow handler slows its peer, not the server's memory); ``send`` waits while the transport's
buffer is full. Pings are answered at once, keep-alive pings go out every
``ping_interval``, and a missing pong or an oversized message closes the connection with
the code RFC 6455 gives it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason

from .. import limits
from ..accesslog import access_log, safe_target
from ..messages import Request
from ..transport import FlowControl
from .deflate import BoundedDeflate, negotiate
from .handshake import refusal, switch_headers

__all__ = ["WebSocket", "WebSocketDisconnect"]

log = logging.getLogger("framework.websocket")

Upgrade = Callable[[list[tuple[bytes, bytes]], asyncio.Protocol], None]

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"


class Frames(Protocol):
    """What a ``WebSocket`` sends and receives through once accepted (``_Frames`` here)."""

    messages: deque[str | bytes]
    ended: WebSocketDisconnect | None

    async def next_message(self) -> str | bytes: ...
    async def send(self, event: TextMessage | BytesMessage) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class Channel(Protocol):
    """Where the frames are when another server did the handshake (an ASGI server)."""

    async def accept(
        self, ws: WebSocket, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> Frames: ...


class WebSocketDisconnect(ConnectionError):
    """The WebSocket closed: ``code`` and ``reason`` are the close frame's (1006: none came)."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason

    def again(self) -> WebSocketDisconnect:
        """A new exception saying the same: raising the stored one again would tie each
        raise's traceback (its frames, the connection) to it, a cycle only a full garbage
        collection frees."""
        return WebSocketDisconnect(self.code, self.reason)


class WebSocket:
    """A WebSocket connection, for a route declared with ``App.websocket``.

    Call ``accept()`` first (or return without it to refuse: the client gets a 403); then
    ``receive_text/bytes/json()`` and ``send_text/bytes/json()``, ``async for message in
    ws``, and ``close()``. ``request`` is the opening handshake (path parameters, headers,
    ``client``, ``tls``).

    Args:
        request: the handshake request (``None`` on the client's side).
        max_message_size: largest message accepted (1009 above it).
        queue_size: messages held for the handler before reading pauses.
        ping_interval: seconds between keep-alive pings (``None``: none).
        ping_timeout: seconds a pong may take (1011 after it).
        close_timeout: seconds to wait for the peer's close frame after ours.
        compression: accept ``permessage-deflate`` when the client offers it (bounded: see
            ``deflate.py``).
    """

    def __init__(
        self,
        request: Request | None,
        *,
        max_message_size: int = limits.WS_MAX_MESSAGE_BYTES,
        queue_size: int = limits.WS_QUEUE_MESSAGES,
        ping_interval: float | None = limits.WS_PING_INTERVAL,
        ping_timeout: float = limits.WS_PING_TIMEOUT,
        close_timeout: float = limits.WS_CLOSE_TIMEOUT,
        compression: bool = True,
    ) -> None:
        self._request = request
        self.compression = compression
        self.max_message_size = max_message_size
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.state = CONNECTING
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._frames: _Frames | Frames | None = None
        self._ended: WebSocketDisconnect | None = None  # once detached
        #: The options the route set: the server's defaults (``ServerConfig.ws_*``) apply
        #: to the others.
        self.route_options: frozenset[str] = frozenset()

    @property
    def request(self) -> Request:
        """The opening handshake: path parameters, headers, ``client``, ``tls``.

        Raises:
            RuntimeError: on the client's side, which has no request.
        """
        if self._request is None:
            raise RuntimeError("a client's WebSocket has no request; the server's side has one")
        return self._request

    @property
    def path_params(self) -> dict[str, Any]:
        """The route's parameters (also passed to the handler as keyword arguments)."""
        return self._request.path_params if self._request is not None else {}

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Complete the handshake: write ``101 Switching Protocols`` and start the frames.

        Raises:
            RuntimeError: already accepted or closed, or the server cannot switch protocols.
            ValueError: ``subprotocol`` was not offered, or the handshake is invalid.
        """
        if self.state is not CONNECTING:
            raise RuntimeError(f"the WebSocket is already {self.state}")
        if self._request is None:
            raise RuntimeError("accept() is the server's side of the handshake")
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]
        channel: Channel | None = getattr(self._request, "websocket_channel", None)
        if channel is not None:
            # Under an ASGI server: it did the handshake checks and owns the frames.
            self._frames = await channel.accept(self, subprotocol, extra)
            self.subprotocol = subprotocol
            self.state = OPEN
            return
        why = refusal(self._request)
        if why is not None:
            raise ValueError(why)
        upgrade: Upgrade | None = getattr(self._request, "upgrade", None)
        if upgrade is None:
            raise RuntimeError("this request's server cannot switch protocols")
        extensions: list[Extension] = []
        if self.compression:
            offers = self._request.headers.get_all("sec-websocket-extensions")
            agreed = negotiate(offers, self.max_message_size) if offers else None
            if agreed is not None:
                extensions.append(agreed[0])
                extra.append((b"sec-websocket-extensions", agreed[1].encode("ascii")))
        head = switch_headers(self._request, subprotocol, extra)
        frames = self._frames = _Frames(self, extensions=extensions)
        self.subprotocol = subprotocol
        upgrade(head, frames)
        self.state = OPEN

    # --- receiving --------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one.

        Raises:
            WebSocketDisconnect: the connection closed (its code and reason).
        """
        frames = self._require_open()
        return await frames.next_message()

    async def receive_text(self) -> str:
        """The next message, which must be text.

        Raises:
            WebSocketDisconnect: the connection closed.
            TypeError: the message was binary.
        """
        message = await self.receive()
        if not isinstance(message, str):
            raise TypeError("expected a text message, received a binary one")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary.

        Raises:
            WebSocketDisconnect: the connection closed.
            TypeError: the message was text.
        """
        message = await self.receive()
        if not isinstance(message, bytes):
            raise TypeError("expected a binary message, received a text one")
        return message

    async def receive_json(self) -> Any:
        """The next message (text or UTF-8 binary) parsed as JSON.

        Raises:
            WebSocketDisconnect: the connection closed.
            ValueError: the message is not JSON.
        """
        return json.loads(await self.receive())

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                yield await self.receive()
            except WebSocketDisconnect:
                return

    # --- sending ----------------------------------------------------------------------------

    async def send(self, data: str | bytes) -> None:
        """Send one message (text for ``str``, binary for ``bytes``); waits while the peer lags.

        Raises:
            WebSocketDisconnect: the connection is closed.
        """
        frames = self._require_open()
        await frames.send(TextMessage(data) if isinstance(data, str) else BytesMessage(data))

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send(bytes(data))

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as a JSON text message."""
        await self.send(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (bounded) for the peer's answer."""
        if self._frames is None:
            self.state = CLOSED
            return
        await self._frames.close(code, reason)

    def detach(self) -> None:
        """Let go of the connection once the handler is done with it (it closes by itself).

        The frame protocol refers back to this object, so without this the two would stay in
        memory, with the handshake request and its connection, until a full garbage
        collection. Afterwards every call raises what ended the connection.
        """
        frames, self._frames = self._frames, None
        if frames is not None:
            self._ended = frames.ended or WebSocketDisconnect(1006)

    def _require_open(self) -> _Frames | Frames:
        frames = self._frames
        if frames is None:
            if self._ended is not None:
                raise self._ended.again()
            raise RuntimeError("accept() the WebSocket first")
        if frames.ended is not None and not frames.messages:
            raise frames.ended.again()
        return frames

    def __repr__(self) -> str:
        where = self._request.path if self._request is not None else "client"
        return f"<WebSocket {where} {self.state}>"


#: ``WebSocket`` option -> the ``ServerConfig`` field that gives its server-wide default.
_CONFIG_FIELDS = {
    "max_message_size": "ws_max_message_bytes",
    "queue_size": "ws_queue_messages",
    "ping_interval": "ws_ping_interval",
    "ping_timeout": "ws_ping_timeout",
    "close_timeout": "ws_close_timeout",
}


class _Frames(asyncio.Protocol):
    """The protocol the transport is handed to after ``101``: wsproto's events, bounded."""

    def __init__(
        self, ws: WebSocket, *, client: bool = False, extensions: list[Extension] | None = None
    ) -> None:
        self.ws = ws
        role = ConnectionType.CLIENT if client else ConnectionType.SERVER
        self.conn = Connection(role, extensions)
        self.extensions = extensions or []
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.messages: deque[str | bytes] = deque()
        self.parts: list[str | bytes] = []
        self.part_size = 0
        self.waiter: asyncio.Future[None] | None = None
        self.ended: WebSocketDisconnect | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.pong_waiter: asyncio.TimerHandle | None = None
        self.pinger: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.abort_timer: asyncio.TimerHandle | None = None
        self.opened = time.monotonic()
        self.counts = [0, 0, 0, 0]  # messages in, bytes in, messages out, bytes out

    def configure(self, config: Any) -> None:
        """Take the server's WebSocket defaults (``ServerConfig.ws_*``) the route left unset."""
        ws = self.ws
        for name, field in _CONFIG_FIELDS.items():
            if name not in ws.route_options and hasattr(config, field):
                setattr(ws, name, getattr(config, field))
        for extension in self.extensions:
            if isinstance(extension, BoundedDeflate):
                extension.max_message_size = ws.max_message_size

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(transport)
        self._schedule_ping()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        for event in self.conn.events():
            self._event(event)
        if self.ended is None and self._announced() > self.ws.max_message_size:
            # A frame header that announces more than the limit is refused before its
            # payload arrives: a 2^63-byte frame is not waited for.
            self._fail(1009, f"message over {self.ws.max_message_size} bytes")
        self._update_reading()

    def _announced(self) -> int:
        """Bytes of the message so far plus those the frame being read still announces."""
        # wsproto does not expose the header of a frame in progress; where its decoder is
        # not as expected, the per-part check in _message_part still applies.
        decoder = getattr(getattr(self.conn, "_proto", None), "_frame_decoder", None)
        header = getattr(decoder, "header", None)
        if header is None:
            return 0
        consumed: int = getattr(decoder, "payload_consumed", 0)
        return self.part_size + int(header.payload_len) - consumed

    def _update_reading(self) -> None:
        """Read only while the handler keeps up and the peer reads what we write."""
        flow = self.flow
        if flow is None:
            return
        # A full queue: the handler lags, so must the peer. A full write buffer: the peer
        # does not read our answers (pongs to a ping flood, echoes), so we stop reading.
        if len(self.messages) >= self.ws.queue_size or flow.is_write_paused:
            flow.pause_reading()
        else:
            flow.resume_reading()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(None)
        for event in self.conn.events():
            self._event(event)
        return None  # the transport closes

    def pause_writing(self) -> None:
        if self.flow is not None:
            self.flow.pause_writing()

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.resume_writing()
            self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.flow is not None:
            self.flow.connection_lost(exc)
        for timer in (self.pinger, self.pong_waiter, self.close_timer, self.abort_timer):
            if timer is not None:
                timer.cancel()
        code = self.ws.close_code if self.ws.close_code is not None else 1006
        self._end(code, self.ws.close_reason)
        if not self.closed.done():
            self.closed.set_result(None)
        self._log()

    # --- events -----------------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        if isinstance(event, Message):
            self._message_part(event)
        elif isinstance(event, Ping):
            self._write(self.conn.send(event.response()))
        elif isinstance(event, Pong):
            if self.pong_waiter is not None:
                self.pong_waiter.cancel()
                self.pong_waiter = None
                self._schedule_ping()
        elif isinstance(event, CloseConnection):
            self._peer_closed(event)

    def _message_part(self, event: Message[Any]) -> None:
        if self.ended is not None:
            return
        data = event.data
        self.part_size += len(data)
        if self.part_size > self.ws.max_message_size:
            self._fail(1009, f"message over {self.ws.max_message_size} bytes")
            return
        self.parts.append(data)
        if not event.message_finished:
            return
        parts, self.parts = self.parts, []
        message: str | bytes = (
            parts[0]
            if len(parts) == 1
            else ("".join(parts) if isinstance(event, TextMessage) else b"".join(parts))  # type: ignore[arg-type]
        )
        if isinstance(message, bytearray):
            message = bytes(message)
        self.counts[0] += 1
        self.counts[1] += self.part_size
        self.part_size = 0
        self.messages.append(message)
        self._wake()

    def _peer_closed(self, event: CloseConnection) -> None:
        ws = self.ws
        if self.conn.state is ConnectionState.REMOTE_CLOSING:
            # The peer began the closing handshake: answer it, then the server closes TCP.
            ws.close_code, ws.close_reason = event.code, event.reason or ""
            self._write(self.conn.send(event.response()))
            self._end(event.code, event.reason or "")
            self._drop()
        elif self.conn.state is ConnectionState.CLOSED:
            # The answer to our close frame.
            self._end(ws.close_code or event.code, ws.close_reason)
            self._drop()
        else:
            # Not a close frame: wsproto could not parse the peer's bytes (1002, 1007...).
            self._fail(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> None:
        """Close at once with ``code``: the peer broke the protocol or a limit."""
        log.debug("closing WebSocket %r: %d %s", self.ws, code, reason)
        self.ws.close_code, self.ws.close_reason = code, reason
        if self.conn.state is ConnectionState.OPEN:
            self._write(self.conn.send(CloseConnection(code=code, reason=reason[:120])))
        self._end(code, reason)
        self._drop()

    # --- the handler's side -----------------------------------------------------------------

    async def next_message(self) -> str | bytes:
        while not self.messages:
            if self.ended is not None:
                raise self.ended.again()
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        message = self.messages.popleft()
        self._update_reading()
        return message

    async def send(self, event: TextMessage | BytesMessage) -> None:
        if self.ended is not None or self.conn.state is not ConnectionState.OPEN:
            raise self.ended.again() if self.ended else WebSocketDisconnect(1006)
        data = self.conn.send(event)
        self.counts[2] += 1
        self.counts[3] += len(event.data)
        self._write(data)
        assert self.flow is not None
        try:
            await self.flow.drain()
        except ConnectionError:
            raise (self.ended.again() if self.ended else WebSocketDisconnect(1006)) from None

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if self.conn.state is ConnectionState.OPEN:
            ws.close_code, ws.close_reason = code, reason
            self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
            self._end(code, reason)
            loop = asyncio.get_running_loop()
            self.close_timer = loop.call_later(ws.close_timeout, self._drop)
        await asyncio.shield(self.closed)

    def going_away(self) -> None:
        """The server is shutting down: close with 1001 (the peer answers, then we drop)."""
        if self.conn.state is ConnectionState.OPEN:
            self.ws.close_code, self.ws.close_reason = 1001, "server shutting down"
            self._write(self.conn.send(CloseConnection(code=1001, reason="server shutting down")))
            self._end(1001, "server shutting down")
            loop = asyncio.get_running_loop()
            self.close_timer = loop.call_later(self.ws.close_timeout, self._drop)

    def abort(self) -> None:
        """Drop the connection at once (the drain's timeout passed)."""
        if self.transport is not None:
            self.transport.abort()

    # --- plumbing ---------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _end(self, code: int, reason: str) -> None:
        if self.ended is None:
            self.ended = WebSocketDisconnect(code, reason)
            self.ws.state = CLOSED
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drop(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            # close() waits for the write buffer to flush, which a peer that never reads
            # never lets happen: after the close timeout, cut it.
            if self.abort_timer is None:
                loop = asyncio.get_running_loop()
                self.abort_timer = loop.call_later(self.ws.close_timeout, transport.abort)

    def _schedule_ping(self) -> None:
        interval = self.ws.ping_interval
        if interval is not None and self.transport is not None:
            self.pinger = asyncio.get_running_loop().call_later(interval, self._ping)

    def _ping(self) -> None:
        if self.conn.state is not ConnectionState.OPEN:
            return
        self._write(self.conn.send(Ping(payload=b"framework")))
        loop = asyncio.get_running_loop()
        self.pong_waiter = loop.call_later(self.ws.ping_timeout, self._no_pong)

    def _no_pong(self) -> None:
        self.pong_waiter = None
        self._fail(CloseReason.INTERNAL_ERROR, "keep-alive ping timeout")

    def _log(self) -> None:
        request = self.ws._request
        if request is None or not access_log.isEnabledFor(logging.INFO):
            return
        host = request.client[0] if request.client else "-"
        target = safe_target(request.path)
        m_in, b_in, m_out, b_out = self.counts
        access_log.info(
            '%s - "WEBSOCKET %s" %d %.3fs in %d/%dB out %d/%dB',
            host,
            target,
            self.ws.close_code if self.ws.close_code is not None else 1006,
            time.monotonic() - self.opened,
            m_in,
            b_in,
            m_out,
            b_out,
        )
