"""ASGI applications for the end-to-end tests: Starlette, FastAPI, raw ASGI, and our App.

Importable by a ``framework serve`` or ``uvicorn`` subprocess (``tests.e2e.asgi_apps:NAME``)
as well as in-process. Marks that must cross a process boundary (a background task ran, the
app saw the client leave) are answered by the app itself on another route.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from framework import App, Request
from framework import StreamingResponse as OurStreamingResponse

MARKS: dict[str, asyncio.Event] = {}


def mark(name: str) -> asyncio.Event:
    """The event for ``name`` (made on first use, in the server's loop)."""
    return MARKS.setdefault(name, asyncio.Event())


# --- Starlette ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    if os.environ.get("ASGI_APPS_FAIL_STARTUP"):
        raise RuntimeError("database unreachable at db.invalid:5432")
    yield {"greeting": "hello from lifespan", "started": True}
    print("asgi_apps: lifespan shutdown ran", file=sys.stderr, flush=True)


async def json_route(request: StarletteRequest) -> Response:
    return JSONResponse({"id": 7, "name": "café", "query": dict(request.query_params)})


async def stream_route(request: StarletteRequest) -> Response:
    count = int(request.query_params.get("n", "5"))
    size = int(request.query_params.get("size", "10"))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(count):
            yield (b"%d:" % i) + b"x" * size + b"\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo_route(request: StarletteRequest) -> Response:
    parts = [chunk async for chunk in request.stream()]
    body = b"".join(parts)
    return Response(
        body, media_type=request.headers.get("content-type", "application/octet-stream")
    )


async def state_route(request: StarletteRequest) -> Response:
    return JSONResponse({"greeting": request.state.greeting, "started": request.state.started})


async def background_route(request: StarletteRequest) -> Response:
    async def work() -> None:
        await asyncio.sleep(0)
        mark("background").set()

    return PlainTextResponse("accepted", status_code=202, background=BackgroundTask(work))


async def background_done(request: StarletteRequest) -> Response:
    await asyncio.wait_for(mark("background").wait(), 10)
    return PlainTextResponse("background task ran")


async def scope_route(request: StarletteRequest) -> Response:
    scope = request.scope
    tls = scope.get("extensions", {}).get("tls")
    return JSONResponse(
        {
            "type": scope["type"],
            "asgi": scope["asgi"],
            "http_version": scope["http_version"],
            "method": scope["method"],
            "scheme": scope["scheme"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
            "root_path": scope["root_path"],
            "client": list(scope["client"]),
            "server": list(scope["server"]),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "tls": tls,
        }
    )


async def error_route(request: StarletteRequest) -> Response:
    raise RuntimeError("the error route fails on purpose")


async def forever_route(request: StarletteRequest) -> Response:
    """Streams until the client leaves; then /left answers."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for _ in range(100_000):
                yield b"tick\n"
                await asyncio.sleep(0.01)
        finally:
            mark("left").set()

    return StreamingResponse(chunks(), media_type="text/plain")


async def left_route(request: StarletteRequest) -> Response:
    await asyncio.wait_for(mark("left").wait(), 10)
    return PlainTextResponse("the app saw the client leave")


async def status_route(request: StarletteRequest) -> Response:
    code = int(request.path_params["code"])
    return PlainTextResponse(f"status {code}", status_code=code, headers={"x-custom": "yes"})


starlette_app = Starlette(
    routes=[
        Route("/json", json_route),
        Route("/stream", stream_route),
        Route("/echo", echo_route, methods=["POST", "PUT"]),
        Route("/state", state_route),
        Route("/background", background_route, methods=["POST"]),
        Route("/background/done", background_done),
        Route("/scope/{rest:path}", scope_route),
        Route("/error", error_route),
        Route("/forever", forever_route),
        Route("/left", left_route),
        Route("/status/{code:int}", status_route),
    ],
    lifespan=lifespan,
)


# --- raw ASGI: protocol misuse, and a hello ------------------------------------------------

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI routes: ``/`` a hello, and one route per misuse of the protocol."""
    if scope["type"] != "http":
        raise RuntimeError(f"raw_app serves http only, not {scope['type']}")
    path = scope["path"]
    if path == "/body-first":
        await send({"type": "http.response.body", "body": b"too early"})
    elif path == "/after-complete":
        await send(_START)
        await send({"type": "http.response.body", "body": b"complete"})
        await send({"type": "http.response.body", "body": b"one too many"})
    elif path == "/no-response":
        return
    elif path == "/half":
        await send(_START)
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
    elif path == "/crash-mid-body":
        await send(_START)
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise RuntimeError("the app fails mid-body on purpose")
    else:
        await send(_START)
        await send({"type": "http.response.body", "body": b"Hello, world!"})


# --- our App, to run under uvicorn ---------------------------------------------------------

native_app = App()


@native_app.middleware
async def tag(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["x-handled-by"] = "framework"
    return response


@native_app.get("/")
async def hello(request: Request) -> str:
    return "Hello, world!"


@native_app.get("/users/{user_id:int}")
async def user(request: Request, user_id: int) -> dict[str, Any]:
    return {"id": user_id, "query": request.query.get("q")}


@native_app.post("/echo")
async def echo(request: Request) -> bytes:
    return await request.body(max_size=64 * 1024 * 1024)


@native_app.get("/stream")
async def stream(request: Request) -> OurStreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(20):
            yield b"%d\n" % i

    return OurStreamingResponse(chunks(), media_type="text/plain")


@native_app.get("/error")
async def error(request: Request) -> str:
    raise RuntimeError("the error route fails on purpose")


@native_app.get("/started")
async def started(request: Request) -> str:
    return "started" if NATIVE_STATE.get("started") else "not started"


NATIVE_STATE: dict[str, bool] = {}


@native_app.on_startup
async def up() -> None:
    NATIVE_STATE["started"] = True


@native_app.get("/forever")
async def forever(request: Request) -> OurStreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            for _ in range(100_000):
                yield b"tick\n"
                await asyncio.sleep(0.01)
        finally:
            mark("native-left").set()

    return OurStreamingResponse(chunks(), media_type="text/plain")


@native_app.get("/left")
async def native_left(request: Request) -> str:
    await asyncio.wait_for(mark("native-left").wait(), 10)
    return "the app saw the client leave"
