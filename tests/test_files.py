"""Ranges, conditionals and path lookup of file responses, with hostile input from hypothesis.

A ``Range`` header of any shape never raises anything but ``Unsatisfiable`` and never names a
byte outside the file; a ``FileResponse`` answering it sends exactly the bytes its headers
promise, all from the file; ``StaticFiles.lookup`` never returns a path outside its root.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import FileResponse, Request, StaticFiles, files, limits

SIZE = 1000


def test_parse_range_forms() -> None:
    assert files.parse_range("bytes=0-9", SIZE) == [(0, 9)]
    assert files.parse_range("bytes=990-", SIZE) == [(990, 999)]
    assert files.parse_range("bytes=-10", SIZE) == [(990, 999)]
    assert files.parse_range("bytes=-5000", SIZE) == [(0, 999)]
    assert files.parse_range("bytes=990-5000", SIZE) == [(990, 999)]
    assert files.parse_range("BYTES = 0-1, 5-6", SIZE) == [(0, 1), (5, 6)]
    # Overlapping and adjacent ranges are merged, in order.
    assert files.parse_range("bytes=50-60,0-10,5-20,21-30", SIZE) == [(0, 30), (50, 60)]
    assert files.parse_range("bytes=0-1,2000-3000", SIZE) == [(0, 1)]
    assert files.parse_range("bytes=0-" + "9" * 5000, SIZE) == [(0, 999)]


@pytest.mark.parametrize(
    "value", ["", "bytes", "bytes=", "items=0-1", "bytes=5-3", "bytes=-", "bytes=a-b", "bytes=1"]
)
def test_parse_range_ignores_what_it_cannot_read(value: str) -> None:
    assert files.parse_range(value, SIZE) is None


@pytest.mark.parametrize(
    "value", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-1001,-0"]
)
def test_parse_range_unsatisfiable(value: str) -> None:
    with pytest.raises(files.Unsatisfiable):
        files.parse_range(value, SIZE)


def test_too_many_ranges_send_the_whole_file() -> None:
    many = ",".join(f"{i * 3}-{i * 3}" for i in range(limits.MAX_RANGES + 1))
    assert files.parse_range("bytes=" + many, SIZE * 10) is None
    # Overlapping ones merge into one and are fine.
    assert files.parse_range("bytes=" + ",".join(["0-500"] * 700), SIZE) == [(0, 500)]
    # A header listing more than four times the limit is not read to its end.
    assert files.parse_range("bytes=" + ",".join(["0-500"] * 1000), SIZE) is None


def test_preconditions_in_rfc_order() -> None:
    etag, mtime = '"abc"', 1_000_000_000.5
    date_after = "Sun, 09 Sep 2001 01:46:41 GMT"  # mtime + 1 s
    date_before = "Sun, 09 Sep 2001 01:46:39 GMT"
    assert files.precondition("GET", (None, None, '"abc"', None), etag, mtime) == 304
    assert files.precondition("GET", (None, None, 'W/"abc"', None), etag, mtime) == 304
    assert files.precondition("GET", (None, None, '"x", "abc"', None), etag, mtime) == 304
    assert files.precondition("GET", (None, None, '"x"', date_after), etag, mtime) is None
    assert files.precondition("GET", (None, None, None, date_after), etag, mtime) == 304
    assert files.precondition("GET", (None, None, None, date_before), etag, mtime) is None
    assert files.precondition("GET", (None, None, None, "garbage"), etag, mtime) is None
    # The obsolete forms a recipient must still read (RFC 9110 5.6.7): RFC 850 and asctime.
    rfc850 = "Sunday, 09-Sep-01 01:46:41 GMT"
    assert files.precondition("GET", (None, None, None, rfc850), etag, mtime) == 304
    asctime = "Sun Sep  9 01:46:41 2001"
    assert files.precondition("GET", (None, None, None, asctime), etag, mtime) == 304
    assert (
        files.precondition("GET", (None, None, None, "Sun Sep  9 01:46:39 2001"), etag, mtime)
        is None
    )
    assert files.precondition("PUT", (None, None, "*", None), etag, mtime) == 412
    assert files.precondition("GET", ('"x"', None, None, None), etag, mtime) == 412
    assert files.precondition("GET", ('W/"abc"', None, None, None), etag, mtime) == 412
    assert files.precondition("GET", ('"abc"', None, None, None), etag, mtime) is None
    assert files.precondition("GET", (None, date_before, None, None), etag, mtime) == 412
    assert files.precondition("GET", (None, date_after, None, None), etag, mtime) is None


def test_preferred_encoding() -> None:
    offered = ("br", "gzip")
    assert files.preferred_encoding("gzip, deflate, br", offered) == "br"
    assert files.preferred_encoding("gzip;q=1, br;q=0.5", offered) == "gzip"
    assert files.preferred_encoding("br;q=0, *", offered) == "gzip"
    assert files.preferred_encoding("identity", offered) is None
    assert files.preferred_encoding("gzip;q=nan, br;q=bad", offered) is None
    assert files.preferred_encoding(None, offered) is None


@settings(max_examples=400, deadline=None)
@given(
    size=st.integers(0, 5000),
    value=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.tuples(
                st.one_of(st.none(), st.integers(0, 10**25)),
                st.one_of(st.none(), st.integers(0, 10**25)),
            ),
            max_size=300,
        ).map(
            lambda specs: (
                "bytes="
                + ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
            )
        ),
    ),
)
def test_hostile_range_headers_stay_inside_the_file(size: int, value: str) -> None:
    try:
        ranges = files.parse_range(value, size)
    except files.Unsatisfiable:
        return
    if ranges is None:
        return
    assert 1 <= len(ranges) <= limits.MAX_RANGES
    previous_end = -2
    for start, end in ranges:
        assert 0 <= start <= end < size
        assert start > previous_end + 1  # sorted, disjoint, not adjacent
        previous_end = end


async def _answer(path: Path, headers: dict[str, str]) -> tuple[FileResponse, bytes]:
    response = FileResponse(path)
    answered = response.for_request(Request("GET", "/f", headers))
    assert isinstance(answered, FileResponse) or answered.status in (412, 416)
    body = b""
    if answered.body_iterator is not None:
        async for chunk in answered.body_iterator:
            assert len(chunk) <= limits.FILE_CHUNK_BYTES + 4096  # streamed, in pieces
            body += chunk
    assert isinstance(answered, FileResponse)
    return answered, body


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    data = os.urandom(3000)
    path.write_bytes(data)
    return path, data


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 4000)), min_size=1, max_size=8)
)
def test_file_response_sends_exactly_the_promised_bytes(
    data_file: tuple[Path, bytes], specs: list[tuple[int, int]]
) -> None:
    path, data = data_file
    value = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in specs)
    if all(min(a, b) >= len(data) for a, b in specs):
        response = FileResponse(path).for_request(Request("GET", "/f", {"range": value}))
        assert response.status == 416
        return
    response, body = asyncio.run(_answer(path, {"range": value}))
    assert response.status == 206
    assert int(response.headers["content-length"]) == len(body)
    if "content-range" in response.headers:
        start, end = (
            int(n) for n in response.headers["content-range"].split()[1].split("/")[0].split("-")
        )
        assert body == data[start : end + 1]
        return
    boundary = response.headers["content-type"].split("boundary=")[1]
    parts = body.split(f"--{boundary}".encode())
    for part in parts[1:-1]:
        head, _, chunk = part.partition(b"\r\n\r\n")
        span = head.split(b"bytes ")[1].split(b"/")[0]
        start, end = (int(n) for n in span.split(b"-"))
        assert chunk.removesuffix(b"\r\n") == data[start : end + 1]


def test_file_response_304_and_412(data_file: tuple[Path, bytes]) -> None:
    path, _ = data_file
    etag = FileResponse(path).headers["etag"]
    response = FileResponse(path, headers={"cache-control": "max-age=60"})
    answered = response.for_request(Request("GET", "/f", {"if-none-match": etag}))
    assert answered.status == 304
    assert answered.body_iterator is None
    assert "content-length" not in answered.headers
    assert answered.headers["etag"] == etag
    assert answered.headers["cache-control"] == "max-age=60"
    failed = FileResponse(path).for_request(Request("GET", "/f", {"if-match": '"other"'}))
    assert failed.status == 412


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tree")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "index.html").write_text("i")
    (root / ".hidden").write_text("h")
    (base / "root-evil").mkdir()
    (base / "root-evil" / "x.txt").write_text("x")
    (base / "secret.txt").write_text("s")
    (root / "out").symlink_to(base / "secret.txt")
    (root / "outdir").symlink_to(base / "root-evil")
    return root


def test_lookup_refuses_escapes(tree: Path) -> None:
    static = StaticFiles(tree)
    for path in [
        "../secret.txt",
        "sub/../../secret.txt",
        "out",
        "outdir/x.txt",
        ".hidden",
        "sub/..",
        "a.txt/",
        "\\..\\secret.txt",
        "a.txt\x00",
        "../root-evil/x.txt",
    ]:
        assert static.lookup(path) is None, path
    assert StaticFiles(tree, dotfiles=True).lookup(".hidden") is not None
    assert static.lookup("sub") == "redirect"
    assert static.lookup("sub/") is not None
    assert StaticFiles(tree, index=None).lookup("sub/") is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "",
                "a.txt",
                "sub",
                "out",
                "outdir",
                "x.txt",
                "%2e%2e",
                "..\\",
                "root-evil",
                "secret.txt",
                "\x00",
                "index.html",
            ]
        ),
        max_size=8,
    )
)
def test_hostile_paths_never_leave_the_root(tree: Path, segments: list[str]) -> None:
    found = StaticFiles(tree, dotfiles=True).lookup("/".join(segments))
    if found is None or isinstance(found, str):
        return
    assert os.path.realpath(found.path).startswith(os.path.realpath(tree) + os.sep)


def test_static_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        StaticFiles(tmp_path / "missing")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.css", "text/css; charset=utf-8"),
        ("a.css.gz", "application/gzip"),
        ("a.tar.gz", "application/gzip"),
        ("a.css.br", "application/x-brotli"),
        ("a.wasm", "application/wasm"),
        ("a.svg", "image/svg+xml"),
        ("README", "application/octet-stream"),
    ],
)
def test_media_type_by_extension(name: str, expected: str) -> None:
    assert files.media_type(name) == expected
