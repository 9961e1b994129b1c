"""Start one WebSocket echo server for ``benchmarks/websocket_echo.py``, on uvloop.

``python -m benchmarks.apps.serve_ws KIND --port P --cert C --key K [--no-tickets]``, KIND
one of ``SERVERS``: this package's ``App.websocket`` route (``ws-ours``), a raw ASGI echo
app on this package's server (``ws-ours-asgi``) and on uvicorn with either of its WebSocket
implementations (``ws-uvicorn-websockets``, ``ws-uvicorn-wsproto``), and aiohttp.web's
``WebSocketResponse`` (``ws-aiohttp``). Each echoes every message back as it came; each
accepts ``permessage-deflate`` when the client offers it (its own default settings).
"""

from __future__ import annotations

import argparse
from typing import Any

import uvloop

from .serve import _no_tickets, _plain_context, _until_signal

SERVERS = (
    "ws-ours",
    "ws-ours-asgi",
    "ws-uvicorn-websockets",
    "ws-uvicorn-wsproto",
    "ws-aiohttp",
)
MAX_MESSAGE = 1024 * 1024  # the same bound everywhere (ours by default)


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The raw ASGI WebSocket echo app (no framework between server and app)."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def _ours_app() -> Any:
    from framework import App, WebSocket

    app = App()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    return app


async def _serve_ours(args: argparse.Namespace, asgi: bool) -> None:
    from framework.asgi import ASGIHandler
    from framework.server import Server
    from framework.tls import CertificateStore

    store = CertificateStore(args.cert, args.key)
    if args.no_tickets:
        _no_tickets(store.context)
    handler = ASGIHandler(asgi_echo, lifespan="off") if asgi else _ours_app()
    server = Server(handler, host=args.host, port=args.port, ssl=store)
    await server.start()
    print(f"ready {server.url}", flush=True)
    await _until_signal()
    await server.aclose(5)


def _run_uvicorn(args: argparse.Namespace, ws: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        asgi_echo,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="h11",
        ws=ws,  # type: ignore[arg-type]
        ws_max_size=MAX_MESSAGE,
        lifespan="off",
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        access_log=False,
    )
    config.load()
    if args.no_tickets:
        _no_tickets(config.ssl)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


async def _serve_aiohttp(args: argparse.Namespace) -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.add_routes([web.get("/ws", echo)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    context = _plain_context(args.cert, args.key, args.no_tickets)
    site = web.TCPSite(runner, args.host, args.port, ssl_context=context)
    await site.start()
    print("ready", flush=True)
    try:
        await _until_signal()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apps.serve_ws")
    parser.add_argument("kind", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--no-tickets", action="store_true", help="no TLS session resumption")
    args = parser.parse_args(argv)
    if args.kind.startswith("ws-uvicorn-"):
        _run_uvicorn(args, args.kind.removeprefix("ws-uvicorn-"))
    elif args.kind == "ws-aiohttp":
        uvloop.run(_serve_aiohttp(args))
    else:
        uvloop.run(_serve_ours(args, asgi=args.kind == "ws-ours-asgi"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
