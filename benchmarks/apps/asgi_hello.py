"""The same raw ASGI hello app for every ASGI server, and a native route with its response.

``app`` is ASGI 3 with no framework at all (lifespan answered, every path says hello), so a
comparison of servers running it measures the servers and, here, the ASGI adapter.
``native`` is an ``App`` whose one route gives the same status, headers and body, for the
adapter's cost over the native path.

Run it:   python -m framework serve benchmarks.apps.asgi_hello:app --certfile C --keyfile K
          uvicorn benchmarks.apps.asgi_hello:app --ssl-certfile C --ssl-keyfile K
"""

from __future__ import annotations

from typing import Any

from framework import App, Request, Response

BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]
_START = {"type": "http.response.start", "status": 200, "headers": HEADERS}
_BODY = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_START)
    await send(_BODY)


native = App()


@native.get("/")
async def hello(request: Request) -> Response:
    return Response(BODY, media_type="text/plain; charset=utf-8")
