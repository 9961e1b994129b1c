"""App: return values, errors, exception handlers, middleware and lifecycle hooks."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from framework import App, HTTPError, Request, Response
from framework.app import CallNext, to_response
from framework.messages import JSONResponse


def call(app: App, method: str = "GET", target: str = "/", body: bytes = b"") -> Response:
    return asyncio.run(app(Request(method, target, body=body)))


def app_returning(value: Any) -> App:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> Any:
        return value

    return app


@pytest.mark.parametrize(
    ("value", "status", "content_type", "body"),
    [
        ("héllo", 200, "text/plain; charset=utf-8", "héllo".encode()),
        (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
        (bytearray(b"ab"), 200, "application/octet-stream", b"ab"),
        ({"a": 1}, 200, "application/json", b'{"a":1}'),
        ([1, "x"], 200, "application/json", b'[1,"x"]'),
        (None, 204, None, b""),
    ],
)
def test_app_converts_return_values(
    value: Any, status: int, content_type: str | None, body: bytes
) -> None:
    response = call(app_returning(value))
    assert response.status == status
    assert response.headers.get("content-type") == content_type
    assert response.body == body


def test_app_response_is_returned_as_it_is() -> None:
    made = Response("made", status=201, headers={"X-A": "1"})
    assert call(app_returning(made)) is made
    json_made = JSONResponse([1])
    assert call(app_returning(json_made)) is json_made


def test_to_response_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="returned int; return str, bytes, dict, list, None"):
        to_response(42)


def test_app_bad_return_type_is_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="framework.app"):
        response = call(app_returning(42))
    assert response.status == 500
    assert any("TypeError" in (r.exc_text or "") for r in caplog.records)


def test_app_passes_typed_path_params() -> None:
    app = App()
    seen: dict[str, Any] = {}

    @app.get("/users/{user_id:int}/files/{rest:path}")
    async def handler(request: Request, user_id: int, rest: str) -> dict[str, Any]:
        seen.update(request.path_params)
        return {"id": user_id, "rest": rest}

    response = call(app, target="/users/7/files/a/b.txt")
    assert json.loads(response.body) == {"id": 7, "rest": "a/b.txt"}
    assert seen == {"user_id": 7, "rest": "a/b.txt"}


def test_app_404_and_405_with_allow() -> None:
    app = app_returning("x")
    missing = call(app, target="/nope")
    assert (missing.status, missing.body) == (404, b"Not Found")
    wrong = call(app, "DELETE", "/")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, HEAD"


def test_app_method_decorators_register_their_methods() -> None:
    app = App()

    async def handler(request: Request) -> str:
        return request.method

    for name in ("get", "post", "put", "patch", "delete", "head", "options"):
        assert getattr(app, name)(f"/{name}")(handler) is handler
    for name in ("post", "put", "patch", "delete", "options"):
        assert call(app, name.upper(), f"/{name}").body == name.upper().encode()
    assert call(app, "HEAD", "/head").body == b"HEAD"
    assert call(app, "HEAD", "/get").status == 200
    assert repr(app) == "<App routes=7 middleware=0>"


def test_app_rejects_a_sync_handler() -> None:
    app = App()

    def handler(request: Request) -> str:
        return "x"

    with pytest.raises(TypeError, match="must be an async function"):
        app.get("/")(handler)  # type: ignore[type-var]


def test_app_http_error_becomes_its_response() -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> str:
        raise HTTPError(401, "log in first", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/bare")
    async def bare(request: Request) -> str:
        raise HTTPError(418)

    response = call(app)
    assert response.status == 401
    assert response.body == b"log in first"
    assert response.headers["www-authenticate"] == "Bearer"
    assert call(app, target="/bare").body == b"I'm a Teapot"


def test_app_http_error_without_body_status() -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> str:
        raise HTTPError(304, "ignored")

    response = call(app)
    assert response.status == 304
    assert response.body == b""


def test_app_unhandled_exception_is_generic_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()

    @app.get("/boom")
    async def boom(request: Request) -> str:
        raise RuntimeError("secret database password")

    with caplog.at_level(logging.ERROR, logger="framework.app"):
        response = call(app, target="/boom")
    assert response.status == 500
    assert response.body == b"Internal Server Error"
    assert b"secret" not in response.body
    (record,) = [r for r in caplog.records if r.name == "framework.app"]
    assert "GET /boom" in record.getMessage()
    assert record.exc_info is not None
    assert "RuntimeError: secret database password" in (record.exc_text or "")
    assert "Traceback" in (record.exc_text or "")


def test_app_exception_handler_most_specific_wins() -> None:
    app = App()

    @app.get("/lookup")
    async def lookup(request: Request) -> str:
        raise KeyError("k")

    @app.get("/value")
    async def value(request: Request) -> str:
        raise ValueError("v")

    @app.exception_handler(Exception)
    async def on_any(request: Request, exc: Exception) -> Response:
        return Response("any", status=500)

    @app.exception_handler(LookupError)
    async def on_lookup(request: Request, exc: Exception) -> dict[str, str]:
        return {"error": type(exc).__name__}

    lookup_response = call(app, target="/lookup")
    assert lookup_response.status == 200
    assert json.loads(lookup_response.body) == {"error": "KeyError"}
    assert call(app, target="/value").body == b"any"


def test_app_exception_handler_can_answer_http_errors() -> None:
    app = App()

    @app.exception_handler(HTTPError)
    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPError)
        return JSONResponse({"status": exc.status}, status=exc.status)

    response = call(app, target="/missing")
    assert response.status == 404
    assert json.loads(response.body) == {"status": 404}


def test_app_failing_exception_handler_is_500(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> str:
        raise ValueError("first")

    @app.exception_handler(ValueError)
    async def broken(request: Request, exc: Exception) -> str:
        raise RuntimeError("second")

    with caplog.at_level(logging.ERROR, logger="framework.app"):
        response = call(app)
    assert (response.status, response.body) == (500, b"Internal Server Error")
    assert any("exception handler for ValueError failed" in r.getMessage() for r in caplog.records)


def test_app_middleware_first_added_is_outermost() -> None:
    app = app_returning("body")
    order: list[str] = []

    @app.middleware
    async def outer(request: Request, call_next: CallNext) -> Response:
        order.append("outer in")
        response = await call_next(request)
        order.append("outer out")
        response.headers.add("x-trace", "outer")
        return response

    @app.middleware
    async def inner(request: Request, call_next: CallNext) -> Response:
        order.append("inner in")
        response = await call_next(request)
        order.append("inner out")
        response.headers.add("x-trace", "inner")
        return response

    response = call(app)
    assert order == ["outer in", "inner in", "inner out", "outer out"]
    assert response.headers.get_all("x-trace") == ["inner", "outer"]
    assert repr(app) == "<App routes=1 middleware=2>"


def test_app_middleware_short_circuits() -> None:
    app = App()
    reached: list[str] = []

    @app.get("/")
    async def handler(request: Request) -> str:
        reached.append("handler")
        return "handler"

    @app.middleware
    async def guard(request: Request, call_next: CallNext) -> Any:
        if "authorization" not in request.headers:
            return {"error": "unauthorized"}  # converted like a handler's return value
        return await call_next(request)

    @app.middleware
    async def inner(request: Request, call_next: CallNext) -> Response:
        reached.append("inner")
        return await call_next(request)

    response = call(app)
    assert response.headers["content-type"] == "application/json"
    assert reached == []
    authorized = asyncio.run(app(Request("GET", "/", {"Authorization": "x"})))
    assert authorized.body == b"handler"
    assert reached == ["inner", "handler"]


def test_app_middleware_error_goes_to_exception_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_returning("x")

    @app.middleware
    async def broken(request: Request, call_next: CallNext) -> Response:
        raise HTTPError(403, "no")

    response = call(app)
    assert (response.status, response.body) == (403, b"no")


def test_app_middleware_sees_errors_as_responses() -> None:
    app = App()
    seen: list[int] = []

    @app.get("/")
    async def handler(request: Request) -> str:
        raise HTTPError(409)

    @app.middleware
    async def record(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        seen.append(response.status)
        return response

    assert call(app).status == 409
    assert seen == [409]


def test_app_startup_in_order_shutdown_in_reverse() -> None:
    app = App()
    order: list[str] = []

    def hook(name: str) -> Any:
        async def run() -> None:
            order.append(name)

        return run

    app.on_startup(hook("start 1"))
    app.on_startup(hook("start 2"))
    app.on_shutdown(hook("stop 1"))
    app.on_shutdown(hook("stop 2"))

    async def lifecycle() -> None:
        await app.startup()
        await app.shutdown()

    asyncio.run(lifecycle())
    assert order == ["start 1", "start 2", "stop 2", "stop 1"]


def test_app_request_body_is_readable_in_handler() -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"got": await request.json()}

    response = call(app, "POST", "/echo", body=b'{"n": 1}')
    assert json.loads(response.body) == {"got": {"n": 1}}
    bad = call(app, "POST", "/echo", body=b"{")
    assert bad.status == 400
