"""The ASGI adapter's parts without a socket: lifespan both ways, scopes, bodies through receive.

The end-to-end tests (tests/e2e/test_asgi*.py) run real apps over TLS; these pin the protocol
details that are awkward to reach from outside.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

from framework import App, Request, StreamingResponse
from framework.asgi import ASGIHandler, Lifespan
from framework.errors import FrameworkError


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


# --- lifespan, from the server's side -------------------------------------------------------


def test_lifespan_auto_serves_an_app_that_refuses_it(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "http only"

    async def main() -> None:
        lifespan = Lifespan(app)
        await lifespan.startup()
        await lifespan.shutdown()

    with caplog.at_level(logging.INFO, "framework.asgi"):
        run(main())
    assert any("does not support the lifespan protocol" in r.getMessage() for r in caplog.records)


def test_lifespan_on_requires_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("http only")

    with pytest.raises(
        FrameworkError, match="ASGI lifespan startup failed: RuntimeError: http only"
    ):
        run(Lifespan(app, "on").startup())


def test_lifespan_startup_failed_message_is_its_last_line() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        trace = "Traceback (most recent call last):\n  File x\nOSError: no database\n"
        await send({"type": "lifespan.startup.failed", "message": trace})

    with pytest.raises(FrameworkError) as info:
        run(Lifespan(app).startup())
    assert str(info.value) == "ASGI lifespan startup failed: OSError: no database"


def test_lifespan_state_and_shutdown_order(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["db"] = "connected"
        seen.append("startup")
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        seen.append("shutdown")
        await send({"type": "lifespan.shutdown.failed", "message": "pool did not close"})

    async def main() -> dict[str, Any]:
        handler = ASGIHandler(app)
        await handler.startup()
        state = dict(handler.state)
        await handler.shutdown()
        return state

    with caplog.at_level(logging.ERROR, "framework.asgi"):
        assert run(main()) == {"db": "connected"}
    assert seen == ["startup", "shutdown"]
    assert [r.getMessage() for r in caplog.records] == [
        "ASGI lifespan shutdown failed: pool did not close"
    ]


def test_lifespan_off_sends_nothing() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never called")

    async def main() -> None:
        lifespan = Lifespan(app, "off")
        await lifespan.startup()
        await lifespan.shutdown()

    run(main())
    with pytest.raises(ValueError, match="lifespan must be"):
        Lifespan(app, "yes")  # type: ignore[arg-type]


def test_root_path_must_be_a_path() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(ValueError, match="root_path"):
        ASGIHandler(app, root_path="api/")


# --- the adapter without a server -----------------------------------------------------------


def test_adapter_reads_a_body_given_as_bytes_and_frames_like_uvicorn() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        assert message == {"type": "http.request", "body": b"abc", "more_body": False}
        headers = [(b"Content-Type", b"text/plain"), (b"content-length", b"3")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": message["body"]})
        # Once the response is complete, receive() says the exchange is over (as uvicorn).
        assert (await receive()) == {"type": "http.disconnect"}
        done.set()

    done = asyncio.Event()

    async def main() -> Any:
        handler = ASGIHandler(app)
        response = await handler(Request("POST", "/", body=b"abc"))
        await done.wait()
        return response

    response = run(main())
    assert (response.status, response.body) == (201, b"abc")
    # Matching Content-Length is left to the server (its fast path writes it).
    assert response.headers.raw == [(b"content-type", b"text/plain")]
    assert response.body_iterator is None


def test_app_that_answers_without_waiting_runs_in_the_request_task_with_no_loop_turn() -> None:
    # As uvicorn runs an app: in the request's task, whose context it shares. No task of
    # its own and no turn of the loop (a callback queued before the call has not run yet).
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((asyncio.current_task(), var.get()))
        var.set("changed by the app")
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    async def main() -> tuple[Any, bool, str, Any]:
        var.set("the caller's")
        turned = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(turned.set_result, None)
        response = await ASGIHandler(app)(Request("GET", "/"))
        return response, turned.done(), var.get(), asyncio.current_task()

    response, loop_turned, after, caller = run(main())
    assert (response.body, response.on_end) == (b"hi", None)
    assert seen == [(caller, "the caller's")]
    assert after == "changed by the app"
    assert not loop_turned


def test_every_step_of_a_waiting_app_runs_in_one_task_through_the_end_of_the_exchange() -> None:
    # anyio's cancel scopes (Starlette's streaming, its middleware) need every step of an
    # app in the one task it started in: before its response, while it streams, and after.
    # The server sends the answer from another task meanwhile, as _respond does.
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (b"a", b"b"):
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"c"})
        await asyncio.sleep(0)  # after the response is complete
        seen.append(asyncio.current_task())

    async def main() -> tuple[list[bytes], Any]:
        response = await ASGIHandler(app)(Request("GET", "/"))
        iterator, on_end = response.body_iterator, response.on_end
        assert iterator is not None
        assert on_end is not None

        async def sent() -> list[bytes]:  # the server's side, in a task of its own
            return [piece async for piece in iterator]

        sender = asyncio.ensure_future(sent())
        await on_end()  # the app's steps after its answer began, where it began
        return await sender, asyncio.current_task()

    pieces, caller = run(main())
    assert b"".join(pieces) == b"abc"
    assert seen == [caller] * 4


def test_an_app_that_yields_what_no_task_takes_is_told_so_and_answered_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Bad:
        def __await__(self) -> Any:
            yield 42  # not a future: a task refuses it with RuntimeError, thrown in

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await Bad()

    with caplog.at_level(logging.ERROR, "framework.asgi"):
        response = run(ASGIHandler(app)(Request("GET", "/")))
    assert response.status == 500
    (record,) = caplog.records
    assert record.exc_info is not None
    assert "bad yield: 42" in str(record.exc_info[1])


def test_a_cancelled_request_closes_the_app_after_its_response() -> None:
    closed = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})
        try:
            await asyncio.Event().wait()  # work after the response that never ends
        finally:
            closed.set()

    async def main() -> bool:
        response = await ASGIHandler(app)(Request("GET", "/"))
        assert response.on_end is not None
        task = asyncio.ensure_future(response.on_end())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return closed.is_set()

    assert run(main())


# --- our App as an ASGI app -----------------------------------------------------------------


async def _call(app: Any, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[Any]:
    inbox = list(messages)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await asyncio.Event().wait()  # nothing more: wait as a server would
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8443),
        **extra,
    }


def test_app_is_an_asgi_app_with_bodies_in_pieces_head_and_root_path() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> bytes:
        return await request.body()

    @app.get("/items/{n:int}")
    async def item(request: Request, n: int) -> dict[str, Any]:
        return {"n": n, "client": list(request.client or ()), "server": list(request.server or ())}

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> Any:
            yield b"a"
            yield b"b"

        return StreamingResponse(parts())

    pieces = [
        {"type": "http.request", "body": b"he", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"llo", "more_body": False},
    ]
    sent = run(_call(app, _scope("POST", "/echo"), pieces))
    assert sent[0]["status"] == 200
    assert (b"content-length", b"5") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b"hello"}

    scope = _scope("GET", "/api/items/7", root_path="/api")
    sent = run(_call(app, scope, [{"type": "http.request"}]))
    assert sent[1]["body"] == b'{"n":7,"client":["127.0.0.1",5000],"server":["127.0.0.1",8443]}'

    sent = run(_call(app, _scope("HEAD", "/items/7"), [{"type": "http.request"}]))
    assert (b"content-length", b"63") in sent[0]["headers"]
    assert sent[1] == {"type": "http.response.body", "body": b""}

    sent = run(_call(app, _scope("GET", "/stream"), [{"type": "http.request"}]))
    assert [m.get("body") for m in sent[1:]] == [b"a", b"b", b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, False]


def test_app_lifespan_runs_hooks_and_reports_a_failing_one() -> None:
    app = App()
    marks: list[str] = []

    @app.on_startup
    async def up() -> None:
        marks.append("up")

    @app.on_shutdown
    async def down() -> None:
        marks.append("down")

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = run(_call(app, {"type": "lifespan", "asgi": {"version": "3.0"}}, messages))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert marks == ["up", "down"]

    @app.on_startup
    async def broken() -> None:
        raise OSError("no database")

    sent = run(_call(app, {"type": "lifespan"}, [{"type": "lifespan.startup"}]))
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]


def test_app_refuses_an_unknown_scope_type() -> None:
    with pytest.raises(ValueError, match="unsupported ASGI scope type 'webtransport'"):
        run(_call(App(), {"type": "webtransport"}, []))
