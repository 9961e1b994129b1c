"""App state and lifespan, background calls after the response, redirect_slashes, typed
exception handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from framework import App, Client, Request, Response, Server
from tests.conftest import TLSFiles, serve_in_thread


def call(app: App, method: str = "GET", target: str = "/") -> Response:
    return asyncio.run(app(Request(method, target)))


def test_lifespan_wraps_the_hooks_and_fills_app_state() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("enter")
        yield {"db": "pool"}
        events.append("exit")

    app = App(lifespan=lifespan)

    @app.on_startup
    async def up() -> None:
        events.append(f"startup {app.state.db}")

    @app.on_shutdown
    async def down() -> None:
        events.append("shutdown")

    @app.get("/")
    async def handler(request: Request) -> str:
        request.state.seen = True
        return f"{app.state.db} {request.state['seen']}"

    async def main() -> bytes:
        await app.startup()
        response = await app(Request("GET", "/"))
        await app.shutdown()
        return response.body

    assert asyncio.run(main()) == b"pool True"
    assert events == ["enter", "startup pool", "shutdown", "exit"]
    with pytest.raises(AttributeError, match="state has no 'missing'"):
        _ = app.state.missing


def test_redirect_slashes() -> None:
    app = App()

    @app.get("/users/{user_id:int}")
    async def user(request: Request, user_id: int) -> str:
        return str(user_id)

    @app.post("/things/")
    async def things(request: Request) -> str:
        return "things"

    gone = call(app, target="/users/1/?a=b")
    assert (gone.status, gone.headers["location"]) == (308, "/users/1?a=b")
    assert call(app, "POST", "/things").headers["location"] == "/things/"
    assert call(app, target="/nothing/").status == 404
    # Never a redirect to another host: "//evil.example" is a network-path reference.

    async def evil(request: Request) -> str:
        return "x"

    strict = App()
    strict.add_route("//evil.example", evil)
    assert call(strict, target="//evil.example/").status == 404
    off = App(redirect_slashes=False)
    off.add_route("/a", user)
    assert call(off, target="/a/").status == 404


def test_exception_handler_typed_for_its_exception() -> None:
    app = App()

    @app.exception_handler(KeyError)
    async def missing(request: Request, exc: KeyError) -> Response:
        return Response(f"no {exc.args[0]}", status=404)

    @app.get("/")
    async def handler(request: Request) -> str:
        raise KeyError("thing")

    assert call(app).body == b"no thing"


def test_background_runs_after_the_response_is_sent(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    finished = threading.Event()
    done: list[str] = []
    app = App()

    async def after(name: str) -> None:
        # Waits for the test to have the response in hand: the call runs after it was sent.
        await asyncio.to_thread(gate.wait, 10)
        done.append(name)
        finished.set()

    async def broken() -> None:
        raise RuntimeError("background boom")

    @app.get("/")
    async def handler(request: Request) -> Response:
        response = Response("sent")
        response.background(broken)
        response.background(after, "ada")
        return response

    async def fetch(client: Client) -> tuple[int, bytes]:
        response = await client.get("/")
        return response.status, response.content

    with caplog.at_level(logging.ERROR, "framework.app"), serve_in_thread(app, tls_files) as server:

        async def main() -> None:
            async with Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert) as client:
                assert await fetch(client) == (200, b"sent")
                assert done == []
                gate.set()
                assert await asyncio.to_thread(finished.wait, 10)
                assert done == ["ada"]
                assert await fetch(client) == (200, b"sent")  # still serving

        asyncio.run(main())
    assert any("background task" in r.getMessage() and r.exc_info for r in caplog.records)


def test_graceful_drain_waits_for_background_calls(tls_files: TLSFiles) -> None:
    gate = threading.Event()
    done: list[str] = []
    app = App()

    async def after() -> None:
        await asyncio.to_thread(gate.wait, 10)
        done.append("finished")

    @app.get("/")
    async def handler(request: Request) -> Response:
        response = Response("sent")
        response.background(after)
        return response

    def open_gate_once_draining(server: Server) -> None:
        for _ in range(1000):  # bounded: at most ten seconds
            if server.is_draining:
                break
            threading.Event().wait(0.01)
        gate.set()

    stack = contextlib.ExitStack()
    server = stack.enter_context(serve_in_thread(app, tls_files))

    async def main() -> None:
        # The client keeps its connection open, as a keep-alive client does, while the
        # server drains.
        async with Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert) as client:
            assert (await client.get("/")).content == b"sent"
            opener = threading.Thread(target=open_gate_once_draining, args=(server,))
            opener.start()
            assert done == []
            await asyncio.to_thread(stack.close)  # the graceful drain
            opener.join(10)
            assert done == ["finished"]

    asyncio.run(main())
