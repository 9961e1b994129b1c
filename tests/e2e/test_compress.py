"""Compression over real TLS, as curl --compressed and our client see it.

What is compressed (JSON, text, files, streams), what never is (small bodies, images, ranges,
bodies already encoded), ``Vary`` and weak ``ETag``s, and a stream compressed piece by piece:
its first piece arrives, decodable, while the handler still waits to produce the next.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import brotli
import pytest

from framework import (
    App,
    Client,
    CompressionMiddleware,
    FileResponse,
    Request,
    Response,
    Server,
    StreamingResponse,
)
from tests.conftest import TLSFiles, require_tool, serve_in_thread

pytestmark = pytest.mark.tool

ITEMS = [{"id": i, "name": f"item number {i}", "tags": ["a", "b"]} for i in range(200)]
TEXT = ("All work and no play makes Jack a dull boy.\n" * 500).encode()
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@dataclass
class Site:
    server: Server
    release: threading.Event  # lets the stream handler produce its second piece


@pytest.fixture(scope="module")
def curl() -> str:
    return require_tool("curl")


@pytest.fixture(scope="module")
def site(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("compress")
    (root / "book.txt").write_bytes(TEXT)
    release = threading.Event()
    app = App()
    app.middleware(CompressionMiddleware(minimum_size=500))

    @app.get("/items")
    async def items(request: Request) -> list[dict[str, object]]:
        return ITEMS

    @app.get("/small")
    async def small(request: Request) -> str:
        return "short"

    @app.get("/image")
    async def image(request: Request) -> Response:
        return Response(PNG, media_type="image/png")

    @app.get("/encoded")
    async def encoded(request: Request) -> Response:
        return Response(
            gzip.compress(TEXT), headers={"content-encoding": "gzip"}, media_type="text/plain"
        )

    @app.get("/book")
    async def book(request: Request) -> FileResponse:
        return FileResponse(root / "book.txt")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first piece of the stream\n" * 40
            for _ in range(1000):  # at most 10 s
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
            yield b"second piece\n" * 40

        return StreamingResponse(pieces(), media_type="text/plain")

    with serve_in_thread(app, tls_files) as server:
        yield Site(server, release)


def run_curl(curl: str, tls_files: TLSFiles, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [curl, "--silent", "--show-error", "--max-time", "10", "--cacert", str(tls_files.ca_cert)]
        + list(args),
        capture_output=True,
        timeout=30,
        check=False,
    )


def head_and_body(curl: str, tls_files: TLSFiles, *args: str) -> tuple[bytes, bytes]:
    result = run_curl(curl, tls_files, "-i", *args)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    return head.lower(), body


def url(site: Site, path: str) -> str:
    return f"https://localhost:{site.server.port}{path}"


@pytest.mark.parametrize(("accept", "coding"), [("br", b"br"), ("gzip", b"gzip")])
def test_curl_compressed_json(
    curl: str, tls_files: TLSFiles, site: Site, accept: str, coding: bytes
) -> None:
    head, raw = head_and_body(
        curl, tls_files, "-H", f"Accept-Encoding: {accept}", url(site, "/items")
    )
    assert b"content-encoding: " + coding in head
    assert b"vary: accept-encoding" in head
    decoded = brotli.decompress(raw) if coding == b"br" else gzip.decompress(raw)
    assert json.loads(decoded) == ITEMS
    assert len(raw) < len(decoded) / 4
    # curl --compressed asks for what it can decode and decodes it.
    result = run_curl(curl, tls_files, "--compressed", url(site, "/items"))
    assert json.loads(result.stdout) == ITEMS


def test_without_accept_encoding_nothing_is_compressed(
    curl: str, tls_files: TLSFiles, site: Site
) -> None:
    head, body = head_and_body(curl, tls_files, url(site, "/items"))
    assert b"content-encoding" not in head
    assert b"vary: accept-encoding" in head
    assert json.loads(body) == ITEMS


@pytest.mark.parametrize("path", ["/small", "/image", "/encoded"])
def test_never_compressed(curl: str, tls_files: TLSFiles, site: Site, path: str) -> None:
    head, body = head_and_body(curl, tls_files, "-H", "Accept-Encoding: gzip, br", url(site, path))
    assert head.count(b"content-encoding") == (1 if path == "/encoded" else 0)
    expected = {"/small": b"short", "/image": PNG, "/encoded": gzip.compress(TEXT)}[path]
    if path == "/encoded":
        assert gzip.decompress(body) == TEXT  # sent as the handler encoded it, once
    else:
        assert body == expected


def test_file_compressed_with_weak_etag_and_ranges_left_alone(
    curl: str, tls_files: TLSFiles, site: Site
) -> None:
    head, body = head_and_body(curl, tls_files, "-H", "Accept-Encoding: gzip", url(site, "/book"))
    assert b"content-encoding: gzip" in head
    assert b"content-length" not in head  # compressed as it is read, so sent chunked
    assert b'etag: w/"' in head
    assert gzip.decompress(body) == TEXT
    # A range of the file: 206 with the file's own bytes, not compressed.
    head, body = head_and_body(
        curl, tls_files, "-H", "Accept-Encoding: gzip", "-r", "10-29", url(site, "/book")
    )
    assert head.startswith(b"http/1.1 206")
    assert b"content-encoding" not in head
    assert body == TEXT[10:30]
    # The weak tag still validates the file: 304.
    etag = next(
        line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.startswith(b"etag:")
    )
    result = run_curl(
        curl,
        tls_files,
        "-H",
        "Accept-Encoding: gzip",
        "-H",
        f"If-None-Match: W/{etag.decode()}",
        "-w",
        "%{http_code}",
        url(site, "/book"),
    )
    assert result.stdout == b"304"


def test_stream_is_compressed_piece_by_piece(tls_files: TLSFiles, site: Site) -> None:
    async def main() -> None:
        async with Client(f"https://localhost:{site.server.port}", ca=tls_files.ca_cert) as client:
            async with client.stream(
                "GET", "/stream", headers={"Accept-Encoding": "gzip"}
            ) as response:
                assert response.headers["content-encoding"] == "gzip"
                assert "content-length" not in response.headers
                decoder = zlib.decompressobj(31)
                text = b""
                async for raw in response.aiter_raw():
                    text += decoder.decompress(raw)
                    if text == b"first piece of the stream\n" * 40:
                        # Decodable before the handler made its second piece.
                        assert not site.release.is_set()
                        site.release.set()
                text += decoder.flush()
                assert site.release.is_set()
                assert text == b"first piece of the stream\n" * 40 + b"second piece\n" * 40

    asyncio.run(main())


def test_client_decodes_compressed_responses(tls_files: TLSFiles, site: Site) -> None:
    async def main() -> None:
        async with Client(f"https://localhost:{site.server.port}", ca=tls_files.ca_cert) as client:
            response = await client.get("/items")  # Accept-Encoding: gzip, deflate by default
            assert response.headers["content-encoding"] == "gzip"
            assert response.json() == ITEMS

    asyncio.run(main())


def test_in_memory_rules() -> None:
    middleware = CompressionMiddleware(minimum_size=10, media_types=["text/*", "*/*"])
    assert middleware.compressible(Response("x" * 20))
    assert not middleware.compressible(Response("x" * 5))
    assert not middleware.compressible(Response(b"x" * 99, media_type="image/png"))
    assert middleware.compressible(Response(b"x" * 99, media_type="image/svg+xml"))
    assert not middleware.compressible(Response(b"x" * 99, media_type="video/mp4"))
    assert not middleware.compressible(Response(b"x" * 99, media_type="application/zip"))
    assert not middleware.compressible(
        Response("x" * 99, headers={"cache-control": "no-transform"})
    )
    assert not middleware.compressible(Response("x" * 99, status=304))
    assert not middleware.compressible(Response("x" * 99, status=206))
    with pytest.raises(ValueError, match="gzip_level"):
        CompressionMiddleware(gzip_level=0)


def test_head_of_file(tmp_path: Path, tls_files: TLSFiles) -> None:
    (tmp_path / "a.txt").write_bytes(TEXT)
    app = App()
    app.middleware(CompressionMiddleware())
    app.static("/", tmp_path)

    async def main(server: Server) -> None:
        async with Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert) as client:
            head = await client.request("HEAD", "/a.txt", headers={"Accept-Encoding": "gzip"})
            assert head.status == 200
            assert head.headers["content-encoding"] == "gzip"
            get = await client.get("/a.txt", headers={"Accept-Encoding": "gzip"})
            assert get.content == TEXT

    with serve_in_thread(app, tls_files) as server:
        asyncio.run(main(server))


def test_304_of_a_compressible_file_varies_like_its_200(
    curl: str, tls_files: TLSFiles, site: Site
) -> None:
    head, _ = head_and_body(curl, tls_files, "-H", "Accept-Encoding: gzip", url(site, "/book"))
    etag = next(
        line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.startswith(b"etag:")
    )
    head, body = head_and_body(
        curl,
        tls_files,
        "-H",
        "Accept-Encoding: gzip",
        "-H",
        f"If-None-Match: {etag.decode()}",
        url(site, "/book"),
    )
    assert head.startswith(b"http/1.1 304")
    assert b"vary: accept-encoding" in head
    assert b"content-encoding" not in head
    assert body == b""
