"""CORS and compression middleware in memory: configuration errors, wildcards, credentials,
``Vary`` merging, content negotiation."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from framework import (
    App,
    CompressionMiddleware,
    CORSMiddleware,
    FileResponse,
    Request,
    Response,
    StreamingResponse,
)
from framework.messages import Handler
from framework.middleware.vary import add_vary


def answer(app: App, method: str, headers: dict[str, str], path: str = "/x") -> Response:
    return asyncio.run(app(Request(method, path, headers)))


def cors_app(**options: object) -> App:
    app = App()
    app.middleware(CORSMiddleware(**options))  # type: ignore[arg-type]

    @app.route("/x", ["GET", "DELETE"])
    async def x(request: Request) -> str:
        return "x"

    return app


PREFLIGHT = {
    "origin": "https://a.example",
    "access-control-request-method": "DELETE",
    "access-control-request-headers": "x-one,x-two",
}


def test_wildcard_origin_without_credentials_does_not_vary() -> None:
    app = cors_app(allow_origins="*", allow_methods="*", allow_headers="*")
    response = answer(app, "OPTIONS", PREFLIGHT)
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "DELETE"
    assert response.headers["access-control-allow-headers"] == "x-one, x-two"
    assert "vary" not in response.headers
    simple = answer(app, "GET", {"origin": "https://b.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "vary" not in simple.headers


def test_credentials_echo_the_origin() -> None:
    app = cors_app(
        allow_origins=["https://a.example"],
        allow_methods=["DELETE"],
        allow_headers=["X-One", "X-Two"],
        allow_credentials=True,
        max_age=60,
    )
    response = answer(app, "OPTIONS", PREFLIGHT)
    assert response.status == 204
    assert response.headers["access-control-allow-origin"] == "https://a.example"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-max-age"] == "60"
    assert response.headers["vary"] == "Origin"
    simple = answer(app, "GET", {"origin": "https://a.example"})
    assert simple.headers["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"access-control-request-method": "PATCH"}, "method"),
        ({"access-control-request-headers": "x-one,x-three"}, "headers"),
    ],
)
def test_preflight_refusals_name_what(change: dict[str, str], refused: str) -> None:
    app = cors_app(
        allow_origins=["https://a.example"],
        allow_methods=["DELETE"],
        allow_headers=["x-one", "x-two"],
    )
    response = answer(app, "OPTIONS", {**PREFLIGHT, **change})
    assert response.status == 400
    assert response.body == f"Disallowed CORS {refused}".encode()
    assert "access-control-allow-origin" not in response.headers


def test_origin_regex_and_plain_options() -> None:
    app = cors_app(allow_origin_regex=r"https://[a-z]+\.example", allow_methods=["DELETE"])
    assert answer(app, "OPTIONS", {**PREFLIGHT, "access-control-request-headers": ""}).status == 204
    assert (
        answer(app, "GET", {"origin": "https://x.example.evil"}).headers.get(
            "access-control-allow-origin"
        )
        is None
    )
    # An OPTIONS that is no preflight goes to the routes (here: 405, the route has no OPTIONS).
    assert answer(app, "OPTIONS", {"origin": "https://a.example"}).status == 405


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allow_origins": ["https://a.example/"]}, "ends in '/'"),
        ({"allow_origins": ["a.example"]}, "is not an origin"),
        ({"allow_origins": "*", "allow_credentials": True}, "list the origins"),
        ({"max_age": -1}, "max_age"),
    ],
)
def test_cors_misconfiguration_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CORSMiddleware(**options)  # type: ignore[arg-type]


def test_vary_is_merged() -> None:
    response = Response("x", headers={"vary": "Accept, origin"})
    add_vary(response.headers, "Origin")
    add_vary(response.headers, "Accept-Encoding")
    assert response.headers.get_all("vary") == ["Accept, origin, Accept-Encoding"]
    star = Response("x", headers={"vary": "*"})
    add_vary(star.headers, "Origin")
    assert star.headers["vary"] == "*"


def test_cors_and_compression_together() -> None:
    app = App()
    app.middleware(CORSMiddleware("*"))
    app.middleware(CompressionMiddleware(brotli=False))

    @app.get("/big")
    async def big(request: Request) -> str:
        return "y" * 5000

    response = answer(
        app, "GET", {"origin": "https://a.example", "accept-encoding": "br, gzip"}, "/big"
    )
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["access-control-allow-origin"] == "*"
    assert gzip.decompress(response.body) == b"y" * 5000


def test_compression_closes_the_stream_it_wraps() -> None:
    closed: list[bool] = []

    async def pieces() -> AsyncIterator[bytes]:
        try:
            for _ in range(10):
                yield b"z" * 1000
        finally:
            closed.append(True)

    async def main() -> None:
        middleware = CompressionMiddleware()

        async def call_next(request: Request) -> Response:
            return StreamingResponse(pieces(), media_type="text/plain")

        response = await middleware(Request("GET", "/", {"accept-encoding": "gzip"}), call_next)
        assert response.body_iterator is not None
        first = await response.body_iterator.__anext__()
        assert first
        await response.body_iterator.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())
    assert closed == [True]


def test_a_file_response_made_by_a_middleware_answers_ranges(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(bytes(range(256)))
    app = App()

    @app.middleware
    async def serve_file(request: Request, call_next: Handler) -> Response:
        return FileResponse(tmp_path / "f.bin")

    response = answer(app, "GET", {"range": "bytes=10-19"})
    assert response.status == 206
    assert response.headers["content-range"] == "bytes 10-19/256"


@pytest.mark.parametrize("size", [1000, 2 * 1024 * 1024], ids=["in-loop", "in-thread"])
def test_in_memory_bodies_compressed_at_any_size(size: int) -> None:
    app = App()
    app.middleware(CompressionMiddleware(brotli=False))
    body = bytes(range(32, 127)) * (size // 95)

    @app.get("/x")
    async def x(request: Request) -> Response:
        return Response(body, media_type="text/plain")

    response = answer(app, "GET", {"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(response.body) == body
