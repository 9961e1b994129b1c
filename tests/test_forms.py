"""Forms: urlencoded and multipart bodies, their limits, and hostile multipart input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import HTTPError
from framework.forms import FormData, UploadFile, parse_form
from framework.multipart import MultipartError, MultipartParser, parse_options_header

BOUNDARY = "----formBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def encode(fields: list[tuple[str, str | tuple[str, bytes]]], boundary: str = BOUNDARY) -> bytes:
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            filename, data = value
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            out += data
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            out += value.encode()
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


async def pieces(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        yield data[pos : pos + size]
        pos += size
    if pos < len(data):
        yield data[pos:]


def parse(
    body: bytes, content_type: str = MULTIPART, sizes: list[int] | None = None, **kw: int
) -> FormData:
    return asyncio.run(
        parse_form(
            content_type,
            pieces(body, sizes or [len(body) or 1]),
            max_size=kw.pop("max_size", 10**8),
            **kw,
        )  # type: ignore[arg-type]
    )


async def read_all(form: FormData) -> list[tuple[str, str | tuple[str, bytes]]]:
    out: list[tuple[str, str | tuple[str, bytes]]] = []
    for name, value in form.items():
        if isinstance(value, UploadFile):
            out.append((name, (value.filename, await value.read())))
        else:
            out.append((name, value))
    await form.close()
    return out


def test_urlencoded() -> None:
    form = parse(b"a=1&b=h%C3%A9+llo&a=2&empty=", "application/x-www-form-urlencoded")
    assert form["a"] == "1"
    assert form.getlist("a") == ["1", "2"]
    assert form["b"] == "hé llo"
    assert form["empty"] == ""
    assert list(form) == ["a", "b", "empty"]


def test_multipart_fields_and_files() -> None:
    body = encode([("title", "héllo"), ("doc", ("a.bin", b"\x00\r\n--not-the-boundary\r\n"))])
    form = parse(body)
    doc = form["doc"]
    assert isinstance(doc, UploadFile)
    assert (doc.filename, doc.content_type, doc.size) == ("a.bin", "application/octet-stream", 23)
    assert asyncio.run(read_all(form)) == [
        ("title", "héllo"),
        ("doc", ("a.bin", b"\x00\r\n--not-the-boundary\r\n")),
    ]


def test_large_file_spools_to_disk(tmp_path: object) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    form = parse(encode([("f", ("big", data))]), sizes=[65536] * 20, spool_bytes=4096)
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert not upload.in_memory
    assert asyncio.run(upload.read()) == data
    asyncio.run(form.close())


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "message"),
    [
        (encode([("a", "x")] * 3), {"max_fields": 2}, 400, "more than 2 fields"),
        (encode([("f", ("n", b"x"))] * 3), {"max_files": 2}, 400, "more than 2 files"),
        (encode([("a", "x" * 100)]), {"max_part_size": 10}, 413, "larger than 10 bytes"),
        (encode([("f", ("n", b"x" * 1000))]), {"max_size": 500}, 413, "form larger than 500"),
        (encode([("a", "x")])[:-10], {}, 400, "ended before its closing boundary"),
        (b"--" + BOUNDARY.encode() + b"\r\nno colon here\r\n\r\n", {}, 400, "malformed"),
        (
            b"--"
            + BOUNDARY.encode()
            + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--"
            + BOUNDARY.encode()
            + b"--",
            {},
            400,
            "no Content-Disposition",
        ),
        (b"--" + BOUNDARY.encode() + b"junk\r\n", {}, 400, "garbage after"),
    ],
)
def test_multipart_limits_and_malformed_bodies(
    body: bytes, kwargs: dict[str, int], status: int, message: str
) -> None:
    with pytest.raises(HTTPError) as info:
        parse(body, **kwargs)
    assert info.value.status == status
    assert message in str(info.value.detail)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("", 415),
        ("multipart/form-data", 400),
        ("multipart/form-data; boundary=" + "x" * 71, 400),
        ("multipart/form-data; boundary=bad\x00", 400),
    ],
)
def test_content_type_refusals(content_type: str, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        parse(b"a=1", content_type)
    assert info.value.status == status


def test_urlencoded_limits() -> None:
    with pytest.raises(HTTPError, match="more than 3 fields"):
        parse(b"a&b&c&d", "application/x-www-form-urlencoded", max_fields=3)
    with pytest.raises(HTTPError, match="413"):
        parse(b"a=" + b"x" * 100, "application/x-www-form-urlencoded", max_size=50)
    with pytest.raises(HTTPError, match="not valid UTF-8"):
        parse(b"a=%ff\xff", "application/x-www-form-urlencoded")


def test_options_header() -> None:
    assert parse_options_header('form-data; name="a\\"b"; filename="c;d.txt"') == (
        "form-data",
        {"name": 'a"b', "filename": "c;d.txt"},
    )
    assert parse_options_header("Form-Data; NAME=x") == ("form-data", {"name": "x"})


field_values = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\r", "")),
    st.tuples(
        st.from_regex(r"[a-z]{1,8}\.bin", fullmatch=True),
        st.binary(max_size=300)
        | st.sampled_from([b"\r\n--" + BOUNDARY.encode()[:-1], b"--" + BOUNDARY.encode() + b"x"]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True), field_values), max_size=6),
    st.lists(st.integers(1, 64), max_size=40),
)
def test_multipart_any_split_gives_the_same_form(
    fields: list[tuple[str, str | tuple[str, bytes]]], sizes: list[int]
) -> None:
    body = encode(fields)
    assert asyncio.run(read_all(parse(body, sizes=sizes))) == fields


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=20))
def test_multipart_parser_survives_garbage(garbage: bytes, sizes: list[int]) -> None:
    parser = MultipartParser(BOUNDARY.encode())
    body = b"--" + BOUNDARY.encode() + b"\r\n" + garbage
    pos = 0
    try:
        for size in [*sizes, len(body)]:
            parser.feed(body[pos : pos + size])
            pos += size
        parser.close()
    except MultipartError:
        pass  # the only error it may raise


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_parse_form_answers_garbage_with_4xx_only(garbage: bytes) -> None:
    try:
        asyncio.run(read_all(parse(b"--" + BOUNDARY.encode() + b"\r\n" + garbage)))
        status = 200
    except HTTPError as exc:
        status = exc.status
    assert status in (200, 400, 413)


def test_app_closes_uploaded_files_after_the_response_and_its_background_calls() -> None:
    from framework import App, Request, Response

    app = App()
    kept: list[UploadFile] = []
    seen: list[bytes] = []

    async def later(upload: UploadFile) -> None:
        await upload.seek(0)
        seen.append(await upload.read())

    @app.post("/")
    async def handler(request: Request) -> Response:
        upload = (await request.form())["f"]
        assert isinstance(upload, UploadFile)
        kept.append(upload)
        response = Response("ok")
        if request.query.get("later"):
            response.background(later, upload)
        return response

    body = encode([("f", ("a.txt", b"data"))])

    async def main(target: str) -> Response:
        headers = {"content-type": MULTIPART}
        response = await app(Request("POST", target, headers, body=body))
        assert not kept[-1].file.closed or not response.background_tasks
        await response.run_background()
        return response

    asyncio.run(main("/"))
    assert kept[-1].file.closed
    asyncio.run(main("/?later=1"))
    assert seen == [b"data"]
    assert kept[-1].file.closed


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    from framework import App, Request

    app = App()

    @app.post("/")
    async def handler(request: Request) -> str:
        await request.form()
        return "read"

    async def never() -> bytes:
        raise AssertionError("the body was read")

    class Source:
        async def read_chunk(self) -> bytes:
            return await never()

    request = Request(
        "POST",
        "/",
        {"content-type": MULTIPART, "content-length": str(10 * 1024 * 1024)},
        body=Source(),
    )
    response = asyncio.run(app(request))
    assert response.status == 413


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_urlencoded_answers_garbage_with_a_form_or_400(garbage: bytes) -> None:
    try:
        form = parse(garbage, "application/x-www-form-urlencoded", max_fields=20)
        status = 200
        assert len(form) <= 20
    except HTTPError as exc:
        status = exc.status
    assert status in (200, 400)


def test_request_form_takes_its_own_limits() -> None:
    from framework import App, Request

    app = App()

    @app.post("/")
    async def handler(request: Request) -> str:
        form = await request.form(max_fields=2)
        return str(len(form))

    async def post(body: bytes) -> tuple[int, bytes]:
        request = Request("POST", "/", {"content-type": MULTIPART}, body=body)
        response = await app(request)
        return response.status, response.body

    assert asyncio.run(post(encode([("a", "1"), ("b", "2")]))) == (200, b"2")
    assert asyncio.run(post(encode([("a", "1")] * 3))) == (400, b"form has more than 2 fields")


def test_form_as_async_context_closes_its_files() -> None:
    async def main() -> UploadFile:
        body = pieces(encode([("f", ("a", b"1"))]), [1000])
        async with await parse_form(MULTIPART, body, max_size=10**6) as form:
            upload = form["f"]
            assert isinstance(upload, UploadFile)
            assert not upload.file.closed
        return upload

    assert asyncio.run(main()).file.closed
