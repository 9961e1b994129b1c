"""Headers, query parameters, Request bodies and the kinds of Response."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from framework.errors import HTTPError
from framework.messages import (
    FileResponse,
    Headers,
    JSONResponse,
    QueryParams,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
    TLSInfo,
)


class ChunkSource:
    """A BodySource that hands out fixed chunks, counting the reads."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.reads = 0

    async def read_chunk(self) -> bytes:
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""


async def collect(iterator: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in iterator])


# --- Headers ---------------------------------------------------------------------------------


def test_headers_lookup_ignores_case() -> None:
    headers = Headers({"Content-Type": "text/plain"})
    assert headers["content-type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert "Content-type" in headers
    assert "content-length" not in headers
    assert 3 not in headers  # type: ignore[operator]
    assert headers.get("X-Missing") is None
    assert headers.get("X-Missing", "d") == "d"
    with pytest.raises(KeyError):
        headers["x-missing"]


def test_headers_keep_every_value_in_order() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("X-A", "x"), ("set-cookie", "b=2")])
    assert headers["set-cookie"] == "a=1"
    assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
    assert headers.get_all("nope") == []
    assert headers.keys() == ["set-cookie", "x-a"]
    assert list(headers) == ["set-cookie", "x-a"]
    assert headers.items() == [("set-cookie", "a=1"), ("x-a", "x"), ("set-cookie", "b=2")]
    assert len(headers) == 3


def test_headers_add_appends_and_setitem_replaces() -> None:
    headers = Headers()
    headers.add("Vary", "Accept")
    headers.add("vary", "Cookie")
    assert headers.get_all("vary") == ["Accept", "Cookie"]
    headers["VARY"] = "Origin"
    assert headers.get_all("vary") == ["Origin"]
    assert headers.setdefault("vary", "other") == "Origin"
    assert headers.setdefault("x-new", "v") == "v"
    assert headers["x-new"] == "v"


def test_headers_delete_removes_every_value() -> None:
    headers = Headers([("a", "1"), ("A", "2"), ("b", "3")])
    del headers["a"]
    assert headers.items() == [("b", "3")]
    with pytest.raises(KeyError):
        del headers["a"]


def test_headers_accept_bytes_and_compare_without_order() -> None:
    raw = Headers([(b"Host", b"example.test"), (b"accept", b"*/*")])
    assert raw["host"] == "example.test"
    assert raw.raw == [(b"host", b"example.test"), (b"accept", b"*/*")]
    assert raw == Headers({"Accept": "*/*", "host": "example.test"})
    assert raw != Headers({"accept": "*/*"})
    assert Headers(raw) == raw
    assert Headers(raw).raw is not raw.raw
    assert "example.test" in repr(raw)


def test_headers_from_raw_wraps_without_copy() -> None:
    pairs = [(b"x", b"1")]
    headers = Headers.from_raw(pairs)
    assert headers.raw is pairs
    assert headers["X"] == "1"


def test_headers_values_decode_as_latin1() -> None:
    headers = Headers([(b"x-name", "café".encode("latin-1"))])
    assert headers["x-name"] == "café"


# --- QueryParams -------------------------------------------------------------------------------


def test_query_params_multi_valued_and_decoded() -> None:
    query = QueryParams("tag=a&tag=b&q=hello+world&empty=&pct=%2F")
    assert query["tag"] == "a"
    assert query.get_all("tag") == ["a", "b"]
    assert query["q"] == "hello world"
    assert query["empty"] == ""
    assert query["pct"] == "/"
    assert query.get("none") is None
    assert "tag" in query
    assert list(query) == ["tag", "q", "empty", "pct"]
    assert len(query) == 5
    assert ("tag", "b") in query.items()
    with pytest.raises(KeyError):
        query["none"]


def test_query_params_from_bytes() -> None:
    assert QueryParams(b"a=1")["a"] == "1"
    assert len(QueryParams()) == 0


# --- Request -----------------------------------------------------------------------------------


def test_request_splits_target_into_path_and_query() -> None:
    request = Request("GET", "/caf%C3%A9/x?a=1&a=2", {"Host": "localhost"})
    assert request.path == "/café/x"
    assert request.raw_path == b"/caf%C3%A9/x"
    assert request.query_string == b"a=1&a=2"
    assert request.query.get_all("a") == ["1", "2"]
    assert request.url == "/caf%C3%A9/x?a=1&a=2"
    assert request.headers["host"] == "localhost"
    assert Request("GET", b"/plain").url == "/plain"
    assert repr(request) == "<Request GET '/caf%C3%A9/x?a=1&a=2'>"


def test_request_body_from_bytes() -> None:
    request = Request("POST", "/", body=b"hello")
    assert asyncio.run(request.body()) == b"hello"
    assert asyncio.run(collect(request.stream())) == b"hello"


def test_request_body_reads_a_source_once_and_caches() -> None:
    source = ChunkSource(b"ab", b"cd")
    request = Request("POST", "/", body=source)

    async def run() -> tuple[bytes, bytes]:
        return await request.body(), await request.body()

    assert asyncio.run(run()) == (b"abcd", b"abcd")
    assert source.reads == 3


def test_request_stream_yields_chunks_as_they_come() -> None:
    request = Request("POST", "/", body=ChunkSource(b"a", b"b", b"c"))

    async def run() -> list[bytes]:
        return [chunk async for chunk in request.stream()]

    assert asyncio.run(run()) == [b"a", b"b", b"c"]


def test_request_stream_twice_raises() -> None:
    request = Request("POST", "/", body=ChunkSource(b"a"))

    async def run() -> None:
        await collect(request.stream())
        await collect(request.stream())

    with pytest.raises(RuntimeError, match="already streamed"):
        asyncio.run(run())


def test_request_text_uses_the_charset() -> None:
    latin = Request(
        "POST", "/", {"content-type": "text/plain; charset=latin-1"}, body="é".encode("latin-1")
    )
    assert asyncio.run(latin.text()) == "é"
    assert asyncio.run(Request("POST", "/", body="é".encode()).text()) == "é"
    bad = Request("POST", "/", body=b"\xff")
    with pytest.raises(HTTPError) as info:
        asyncio.run(bad.text())
    assert info.value.status == 400


def test_request_json_parses_and_400_for_bad_json() -> None:
    assert asyncio.run(Request("POST", "/", body=b'{"a": [1, 2]}').json()) == {"a": [1, 2]}
    with pytest.raises(HTTPError) as info:
        asyncio.run(Request("POST", "/", body=b"{nope").json())
    assert info.value.status == 400
    assert "not valid JSON" in str(info.value.detail)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_request_body_past_max_is_413() -> None:
    request = Request("POST", "/", body=ChunkSource(b"x" * 6, b"x" * 6))
    with pytest.raises(HTTPError) as info:
        asyncio.run(request.body(max_size=10))
    assert info.value.status == 413
    assert asyncio.run(Request("POST", "/", body=ChunkSource(b"x" * 10)).body(max_size=10))


def test_request_tls_info_defaults() -> None:
    info = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256")
    assert info.peer_certificate is None
    assert info.peer_common_name is None
    assert Request("GET", "/", tls=info, client=("127.0.0.1", 5)).tls is info


# --- Response ----------------------------------------------------------------------------------


def test_response_str_is_utf8_text_plain() -> None:
    response = Response("héllo")
    assert response.status == 200
    assert response.body == "héllo".encode()
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.reason == "OK"
    assert repr(response) == "<Response 200>"


def test_response_bytes_has_no_content_type_unless_given() -> None:
    assert "content-type" not in Response(b"\x00\x01").headers
    typed = Response(b"<p>", media_type="text/html")
    assert typed.headers["content-type"] == "text/html"


def test_response_explicit_content_type_header_wins() -> None:
    response = Response("x", headers={"Content-Type": "text/csv"})
    assert response.headers.get_all("content-type") == ["text/csv"]


def test_response_rejects_other_body_types() -> None:
    with pytest.raises(TypeError, match="JSONResponse"):
        Response({"a": 1})  # type: ignore[arg-type]


def test_response_reason_of_unknown_status_is_empty() -> None:
    assert Response(status=599).reason == ""
    assert Response(status=404).reason == "Not Found"


def test_json_response_is_compact_utf8() -> None:
    response = JSONResponse({"name": "café", "n": [1, 2]}, status=201)
    assert response.status == 201
    assert response.headers["content-type"] == "application/json"
    assert response.body == '{"name":"café","n":[1,2]}'.encode()


def test_streaming_response_encodes_str_chunks() -> None:
    async def produce() -> AsyncIterator[bytes | str]:
        yield "a"
        yield b"b"

    response = StreamingResponse(produce(), media_type="text/plain")
    assert response.body == b""
    assert response.headers["content-type"] == "text/plain"
    assert "content-length" not in response.headers
    assert response.body_iterator is not None
    assert asyncio.run(collect(response.body_iterator)) == b"ab"


def test_file_response_headers_and_content(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"x" * 100_000)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    response = FileResponse(path)
    assert response.headers["content-length"] == "100000"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified.timestamp() == 1_700_000_000
    assert "content-disposition" not in response.headers
    assert response.body_iterator is not None
    assert asyncio.run(collect(response.body_iterator)) == b"x" * 100_000


def test_file_response_attachment_and_unknown_type(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"\x00")
    response = FileResponse(path, filename="résumé final.pdf")
    assert response.headers["content-type"] == "application/pdf"
    assert (
        response.headers["content-disposition"]
        == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20final.pdf"
    )
    assert FileResponse(path).headers["content-type"] == "application/octet-stream"
    for made in (response, FileResponse(path)):
        assert made.body_iterator is not None
        asyncio.run(made.body_iterator.aclose())  # type: ignore[attr-defined]


def test_file_response_missing_file_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileResponse(tmp_path / "missing")


def test_redirect_response_location_and_status() -> None:
    response = RedirectResponse("/a b?x=1")
    assert response.status == 307
    assert response.headers["location"] == "/a%20b?x=1"
    assert response.body == b""
    assert RedirectResponse("https://example.test/", status=301).status == 301


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/%2e%2e/c", "/c"),
        ("/a%2f..%2fc", "/c"),  # decoded first: routing sees what the app would
        ("/../x", "/x"),  # kept at the root (the server answers such a target 400)
        ("/a..b/.c/c.", "/a..b/.c/c."),  # names with dots are no dot-segments
        ("/x?y=/../z", "/x"),
    ],
)
def test_request_path_resolves_dot_segments(target: str, path: str) -> None:
    request = Request("GET", target)
    assert request.path == path
    assert request.raw_path == target.partition("?")[0].encode()
