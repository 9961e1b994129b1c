"""WebSocket (RFC 6455) over the server's connections: routes, the ``WebSocket`` object.

``App.websocket(path)`` declares a route whose handler takes a ``WebSocket``; the frames are
wsproto's, the transport and TLS the server's. See ``connection.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import HTTPError
from ..messages import Request, Response
from .connection import CONNECTING, OPEN, WebSocket, WebSocketDisconnect
from .handshake import is_websocket_request, refusal

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketHandler", "websocket_endpoint"]

log = logging.getLogger("framework.websocket")

WebSocketHandler = Callable[..., Awaitable[None]]

# What a WebSocket route answers once the connection was handed over: the server writes
# nothing more on it, so this response is never sent.
_SWITCHED = Response(b"", status=101)


def websocket_endpoint(handler: WebSocketHandler, **options: Any) -> Callable[..., Any]:
    """A route endpoint that runs ``handler(ws, **path_params)`` for a WebSocket handshake.

    A request that is not a WebSocket handshake gets 426 (or 400 when the handshake is
    malformed); a handler that returns without ``accept()`` refuses with 403; an error in the
    handler after ``accept()`` closes with 1011 and is logged.
    """

    async def endpoint(request: Request, **params: Any) -> Response:
        # Under an ASGI server the handshake is its business (and its headers may be gone).
        if getattr(request, "websocket_channel", None) is None:
            if not is_websocket_request(request):
                raise HTTPError(
                    426, "this is a WebSocket endpoint", headers={"Upgrade": "websocket"}
                )
            why = refusal(request)
            if why is not None:
                raise HTTPError(400, why)
        ws = WebSocket(request, **options)
        ws.route_options = frozenset(options)
        try:
            await handler(ws, **params)
        except WebSocketDisconnect:
            pass
        except Exception:
            if ws.state is CONNECTING:
                raise  # not accepted yet: an HTTP 500, as for any handler
            log.exception("error in WebSocket handler for %s", request.path)
            await ws.close(1011, "internal error")
        if ws.state is CONNECTING:
            return Response(b"", status=403)
        if ws.state is OPEN:
            await ws.close(1000)
        ws.detach()
        return _SWITCHED

    endpoint.__qualname__ = getattr(handler, "__qualname__", "websocket_endpoint")
    return endpoint
