"""WebSocket apps for the ASGI tests: Starlette, FastAPI and our ``App``.

Importable by a ``uvicorn`` or ``framework serve`` subprocess (``tests.e2e.ws_apps:NAME``).
Each serves the same routes: ``/echo`` (text and bytes back, a subprotocol when offered),
``/close`` (the app closes with 4001), ``/refuse`` (closed before accept: 403) and, where
the framework has it, ``/deny`` (a 401 with a body, through ``websocket.http.response``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from starlette.websockets import WebSocketDisconnect as StarletteDisconnect

from framework import App, HTTPError, WebSocket

# --- Starlette ------------------------------------------------------------------------------


async def s_echo(ws: StarletteWebSocket) -> None:
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol="chat.v1" if "chat.v1" in offered else None)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text(message["text"])
            else:
                await ws.send_bytes(message["bytes"])
    except StarletteDisconnect:
        return


async def s_close(ws: StarletteWebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    await ws.close(4001, "done here")


async def s_refuse(ws: StarletteWebSocket) -> None:
    await ws.close()


async def s_deny(ws: StarletteWebSocket) -> None:
    await ws.send_denial_response(PlainTextResponse("no token", status_code=401))


async def s_path(ws: StarletteWebSocket) -> None:
    await ws.accept()
    tls = ws.scope.get("extensions", {}).get("tls") is not None
    await ws.send_json({"room": ws.path_params["room"], "scheme": ws.url.scheme, "tls": tls})
    await ws.close()


starlette_ws = Starlette(
    routes=[
        WebSocketRoute("/echo", s_echo),
        WebSocketRoute("/close", s_close),
        WebSocketRoute("/refuse", s_refuse),
        WebSocketRoute("/deny", s_deny),
        WebSocketRoute("/rooms/{room}", s_path),
    ]
)

# --- FastAPI --------------------------------------------------------------------------------

fastapi_ws = FastAPI()


@fastapi_ws.websocket("/echo")
async def f_echo(ws: FastAPIWebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


@fastapi_ws.websocket("/items/{item_id}")
async def f_item(ws: FastAPIWebSocket, item_id: int) -> None:
    await ws.accept()
    await ws.send_json({"item": item_id, "got": await ws.receive_json()})
    await ws.close()


# --- our App --------------------------------------------------------------------------------

native_ws = App()


@native_ws.websocket("/echo")
async def n_echo(ws: WebSocket) -> None:
    offered = ws.request.headers.get("sec-websocket-protocol") or ""
    await ws.accept(subprotocol="chat.v1" if "chat.v1" in offered else None)
    async for message in ws:
        await ws.send(message)


@native_ws.websocket("/close")
async def n_close(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    await ws.close(4001, "done here")


@native_ws.websocket("/refuse")
async def n_refuse(ws: WebSocket) -> None:
    return


@native_ws.websocket("/deny")
async def n_deny(ws: WebSocket) -> None:
    raise HTTPError(401, "no token")


@native_ws.websocket("/rooms/{room}")
async def n_path(ws: WebSocket, room: str) -> None:
    await ws.accept()
    await ws.send_json({"room": room, "scheme": "wss", "tls": ws.request.tls is not None})
    await ws.close()


@native_ws.websocket("/big", max_message_size=64 * 1024)
async def n_big(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)
