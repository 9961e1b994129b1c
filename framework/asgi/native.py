"""A native ``Handler`` (an ``App``) run as an ASGI 3 application, under uvicorn and its peers.

The ``http`` scope becomes a ``Request`` whose body is read through ``receive``; the
``Response`` becomes ``http.response.start`` and body messages (``Content-Length`` for bodies
in memory, the ASGI server's chunked framing for streamed ones, no body bytes for HEAD). The
``lifespan`` scope runs the app's startup and shutdown hooks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ..headers import Headers
from ..messages import Handler, Request, Response, TLSInfo
from .scope import Receive, Scope, Send
from .websocket import ASGIRequest, run_websocket

__all__ = ["run_asgi"]

log = logging.getLogger("framework.asgi")

_VERSION_NAMES = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1", 0x0301: "TLSv1"}


class _ReceiveSource:
    """A request body read through ASGI ``receive``."""

    __slots__ = ("_receive", "_done")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._done = False

    async def read_chunk(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._done = True
                raise ConnectionResetError("client disconnected before sending the whole body")
            self._done = not message.get("more_body", False)
            body: bytes = message.get("body", b"")
            if body:
                return body
        return b""

    @property
    def is_done(self) -> bool:
        """True once the last body message was received."""
        return self._done


def _tls(scope: Scope) -> TLSInfo | None:
    ext = (scope.get("extensions") or {}).get("tls")
    if ext is None:
        # Most ASGI servers (uvicorn) send no TLS extension; "https" still means TLS, which
        # is what Secure cookies and HSTS go by.
        return TLSInfo(version=None, cipher=None) if scope.get("scheme") == "https" else None
    return TLSInfo(version=_VERSION_NAMES.get(ext.get("tls_version") or 0), cipher=None)


def _request(scope: Scope, receive: Receive, cls: type[Request] = Request) -> Request:
    root_path: str = scope.get("root_path", "")
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path is None:
        from urllib.parse import quote

        raw_path = quote(scope["path"]).encode("ascii")
    if root_path:
        root = root_path.encode("latin-1")
        if raw_path.startswith(root):
            raw_path = raw_path[len(root) :] or b"/"
    query: bytes = scope.get("query_string", b"")
    target = raw_path + b"?" + query if query else raw_path
    client = scope.get("client")
    server = scope.get("server")
    websocket = scope["type"] == "websocket"
    raw = [(bytes(k), bytes(v)) for k, v in scope.get("headers", ())]
    offered = scope.get("subprotocols")
    if websocket and offered and not any(k.lower() == b"sec-websocket-protocol" for k, _ in raw):
        # Some ASGI servers (uvicorn's wsproto) give the offer in the scope only: a handler
        # reads it where it would on our server.
        raw.append((b"sec-websocket-protocol", ", ".join(offered).encode("latin-1")))
    return cls(
        "GET" if websocket else scope["method"],
        target,
        Headers(raw),
        body=b"" if websocket else _ReceiveSource(receive),
        client=(client[0], client[1]) if client else None,
        server=(server[0], server[1]) if server else None,
        tls=_tls(scope),
        http_version=scope.get("http_version", "1.1"),
        scheme=scope.get("scheme"),
    )


async def _lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]] | None,
    shutdown: Callable[[], Awaitable[None]] | None,
) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            try:
                if startup is not None:
                    await startup()
            except Exception as exc:
                log.error("startup hook failed: %s: %s", type(exc).__name__, exc)
                await send({"type": "lifespan.startup.failed", "message": f"{exc}"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            try:
                if shutdown is not None:
                    await shutdown()
            except Exception as exc:
                log.error("shutdown hook failed: %s: %s", type(exc).__name__, exc)
                await send({"type": "lifespan.shutdown.failed", "message": f"{exc}"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return


async def run_asgi(
    handler: Handler,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    startup: Callable[[], Awaitable[None]] | None = None,
    shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Answer one ASGI connection (``http``, ``websocket`` or ``lifespan``) with ``handler``.

    Raises:
        ValueError: another scope type; an ASGI server answers it as unsupported.
    """
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send, startup, shutdown)
        return
    if kind == "websocket":
        await run_websocket(handler, _request(scope, receive, ASGIRequest), scope, receive, send)
        return
    if kind != "http":
        raise ValueError(f"unsupported ASGI scope type {kind!r}")
    request = _request(scope, receive)
    response = await handler(request)
    await _send_response(request, response, receive, send)
    if response.background_tasks:
        await response.run_background()


async def _send_response(
    request: Request, response: Response, receive: Receive, send: Send
) -> None:
    headers = response.headers.raw
    iterator = response.body_iterator
    framed = any(name == b"content-length" or name == b"transfer-encoding" for name, _ in headers)
    if iterator is None and not framed:
        headers = [*headers, (b"content-length", b"%d" % len(response.body))]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if request.method == "HEAD":
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        await send({"type": "http.response.body", "body": b""})
        return
    if iterator is None:
        await send({"type": "http.response.body", "body": response.body})
        return
    # While the body streams, watch for the client leaving: servers on ASGI 2.3 (uvicorn)
    # ignore sends after a disconnect, so without this an endless stream would run on.
    source = request.body_source
    gone = asyncio.Event()
    watcher = None
    if isinstance(source, _ReceiveSource) and (source.is_done or not _has_body(request)):
        watcher = asyncio.ensure_future(_watch(source, receive, gone))
    try:
        async for chunk in iterator:
            if gone.is_set():
                return
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        if watcher is not None:
            watcher.cancel()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    await send({"type": "http.response.body", "body": b""})


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _watch(source: _ReceiveSource, receive: Receive, gone: asyncio.Event) -> None:
    try:
        while not source.is_done:
            await source.read_chunk()  # the empty body of a request that has none
        while (await receive())["type"] != "http.disconnect":
            pass
    except ConnectionError:
        pass
    gone.set()
