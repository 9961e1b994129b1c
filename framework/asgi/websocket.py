"""The ASGI ``websocket`` scope, both ways.

``serve_websocket``: an ASGI app's WebSocket endpoint (Starlette, FastAPI) served by this
package's server: its ``websocket.*`` messages drive a ``WebSocket`` (our frames, limits,
drain and access log). ``run_websocket``: an ``App``'s WebSocket routes under an ASGI server
(uvicorn): the route's ``WebSocket`` sends and receives through the server's ``receive`` and
``send``. Both speak ASGI spec 2.3 with the ``websocket.http.response`` extension, so a
denial before accept can be any HTTP response.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from ..headers import Headers
from ..messages import Handler, Request, Response
from ..websocket import WebSocket, WebSocketDisconnect
from ..websocket.connection import CLOSED, CONNECTING, OPEN
from ..websocket.handshake import offered_subprotocols
from .scope import ASGI_VERSION, ASGIApp, Message, Receive, Scope, Send, tls_extension

__all__ = ["ASGIRequest", "run_websocket", "serve_websocket", "websocket_scope"]

log = logging.getLogger("framework.asgi")

# What the handler answers once the connection is a WebSocket: the server sends nothing more.
_SWITCHED = Response(b"", status=101)


def websocket_scope(
    request: Request, root_path: str, state: dict[str, Any], server_cert: str | None = None
) -> Scope:
    """The ``websocket`` scope of a handshake ``request``, as uvicorn gives it."""
    tls = request.tls
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    if tls is not None:
        extensions["tls"] = tls_extension(tls, server_cert)
    return {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "scheme": "wss" if tls is not None else "ws",
        "path": root_path + request.path,
        "raw_path": root_path.encode("latin-1") + request.raw_path,
        "query_string": request.query_string,
        "root_path": root_path,
        "headers": request.headers.raw,
        "client": request.client,
        "server": request.server,
        "subprotocols": offered_subprotocols(request),
        "state": state.copy(),
        "extensions": extensions,
    }


# --- an ASGI app's WebSocket on our server -------------------------------------------------


class _Session:
    """One ASGI app's exchange over a ``WebSocket``: the two callables it is given."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.connected = False
        self.closed: Message | None = None  # the disconnect message, once there is one
        self.denial: Response | None = None
        self.denial_done = False

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.closed is not None:
            return self.closed
        try:
            message = await self.ws.receive()
        except WebSocketDisconnect as exc:
            self.closed = {"type": "websocket.disconnect", "code": exc.code, "reason": exc.reason}
            return self.closed
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        ws = self.ws
        if kind == "websocket.send":
            if ws.state is not OPEN:
                raise WebSocketDisconnect(ws.close_code or 1006, ws.close_reason)
            text = message.get("text")
            await ws.send(text if text is not None else bytes(message.get("bytes") or b""))
        elif kind == "websocket.accept":
            headers = {
                bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
                for k, v in message.get("headers") or ()
            }
            await ws.accept(message.get("subprotocol"), headers)
        elif kind == "websocket.close":
            if ws.state is CONNECTING:
                ws.state = CLOSED  # refused: the handler answers 403
            else:
                await ws.close(int(message.get("code", 1000)), message.get("reason") or "")
        elif kind == "websocket.http.response.start":
            if ws.state is not CONNECTING or self.denial is not None:
                raise RuntimeError(f"{kind!r} is only valid before the WebSocket is accepted")
            headers_raw = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            self.denial = Response(b"", status=int(message["status"]))
            self.denial.headers = Headers.from_raw(headers_raw)
        elif kind == "websocket.http.response.body":
            if self.denial is None or self.denial_done:
                raise RuntimeError(f"{kind!r} without 'websocket.http.response.start' before it")
            self.denial.body += bytes(message.get("body", b""))
            self.denial_done = not message.get("more_body", False)
        else:
            raise RuntimeError(f"unknown ASGI message type {kind!r} for a websocket scope")


async def serve_websocket(app: ASGIApp, request: Request, scope: Scope) -> Response:
    """Run ``app`` for the WebSocket handshake ``request`` until the WebSocket ends.

    Closing before accept refuses with 403 (as uvicorn does), or with the app's own response
    through ``websocket.http.response``; an error before accept is a 500, after it a close
    with 1011; the app returning leaves the WebSocket closed with 1000.
    """
    ws = WebSocket(request)
    session = _Session(ws)
    try:
        await app(scope, session.receive, session.send)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("exception in ASGI app for WebSocket %s", request.path)
        if ws.state is CONNECTING and session.denial is None:
            return Response("Internal Server Error", status=500)
        if ws.state is OPEN:
            await ws.close(1011, "internal error")
    if ws.state is OPEN:
        await ws.close(1000)
    if ws._frames is None:  # never accepted
        return session.denial if session.denial is not None else Response(b"", status=403)
    return _SWITCHED


# --- our App's WebSocket routes under an ASGI server ---------------------------------------


class _ASGIFrames:
    """A ``WebSocket``'s frames when the ASGI server owns the connection."""

    def __init__(self, ws: WebSocket, receive: Receive, send: Send) -> None:
        self.ws = ws
        self.receive = receive
        self.send_message = send
        self.messages: deque[str | bytes] = deque()  # the ASGI server queues, not us
        self.ended: WebSocketDisconnect | None = None

    async def next_message(self) -> str | bytes:
        if self.ended is not None:
            raise self.ended.again()
        message = await self.receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else bytes(message.get("bytes") or b"")
        code = int(message.get("code", 1005))
        self._end(code, message.get("reason") or "")
        assert self.ended is not None
        raise self.ended.again()

    async def send(self, event: Any) -> None:
        if self.ended is not None:
            raise self.ended.again()
        data = event.data
        key = "text" if isinstance(data, str) else "bytes"
        try:
            await self.send_message({"type": "websocket.send", key: data})
        except OSError as exc:  # uvicorn's ClientDisconnected
            self._end(1006, "")
            raise WebSocketDisconnect(1006) from exc

    async def close(self, code: int, reason: str) -> None:
        if self.ended is None:
            self._end(code, reason)
            try:
                await self.send_message({"type": "websocket.close", "code": code, "reason": reason})
            except OSError:
                pass  # gone already

    def _end(self, code: int, reason: str) -> None:
        self.ended = WebSocketDisconnect(code, reason)
        self.ws.close_code, self.ws.close_reason = code, reason
        self.ws.state = CLOSED


class _Channel:
    """Accepts a route's ``WebSocket`` through the ASGI server's ``send``."""

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive = receive
        self.send = send
        self.frames: _ASGIFrames | None = None

    async def accept(
        self, ws: WebSocket, subprotocol: str | None, headers: list[tuple[bytes, bytes]]
    ) -> _ASGIFrames:
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = headers
        await self.send(message)
        self.frames = _ASGIFrames(ws, self.receive, self.send)
        return self.frames


class ASGIRequest(Request):
    """A handshake request from an ASGI ``websocket`` scope: its frames are the server's."""

    __slots__ = ("websocket_channel",)
    websocket_channel: _Channel


async def run_websocket(
    handler: Handler, request: Request, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer an ASGI ``websocket`` scope with a native ``handler`` (an ``App``).

    ``request`` is the scope's handshake; a response other than the switch (a 403 for a
    handler that never accepted, a 404 for no route) is a denial: sent as an HTTP response
    when the server has the ``websocket.http.response`` extension, else a close.
    """
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    channel = _Channel(receive, send)
    if isinstance(request, ASGIRequest):
        request.websocket_channel = channel
    response = await handler(request)
    if channel.frames is not None:
        if channel.frames.ended is None:
            await channel.frames.close(1000, "")
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": response.status,
                "headers": response.headers.raw,
            }
        )
        body = response.body
        if response.body_iterator is not None:
            body = b"".join([chunk async for chunk in response.body_iterator])
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
