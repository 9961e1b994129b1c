"""Static files over real TLS, as curl and our client see them: ranges, conditionals, codings,
directories, and traversal attempts refused."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import App, Client, FileResponse, Request, Server, StaticFiles
from tests.conftest import TLSFiles, require_tool, serve_in_thread

pytestmark = pytest.mark.tool

CSS = b"body { color: #333; margin: 0 auto; }\n" * 200
SECRET = b"outside the served directory\n"


@dataclass
class Site:
    server: Server
    root: Path
    big: bytes = field(repr=False)


def make_tree(base: Path) -> tuple[Path, bytes]:
    root = base / "public"
    (root / "docs").mkdir(parents=True)
    big = os.urandom(300_000)
    (root / "big.bin").write_bytes(big)
    (root / "hello.txt").write_text("Hello, static world!\n")
    (root / "style.css").write_bytes(CSS)
    (root / "style.css.gz").write_bytes(gzip.compress(CSS))
    (root / "style.css.br").write_bytes(brotli.compress(CSS))
    (root / "docs" / "index.html").write_text("<h1>docs</h1>\n")
    (root / ".env").write_text("PASSWORD=hunter2\n")
    (base / "outside.txt").write_bytes(SECRET)
    (root / "escape.txt").symlink_to(base / "outside.txt")
    (root / "alias.txt").symlink_to(root / "hello.txt")
    return root, big


@pytest.fixture(scope="module")
def curl() -> str:
    return require_tool("curl")


@pytest.fixture(scope="module")
def site(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root, big = make_tree(tmp_path_factory.mktemp("static"))
    app = App()
    app.static("/assets", root)

    @app.get("/download")
    async def download(request: Request) -> FileResponse:
        return FileResponse(root / "big.bin", filename="big.bin")

    with serve_in_thread(app, tls_files) as server:
        yield Site(server, root, big)


def run_curl(curl: str, tls_files: TLSFiles, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [curl, "--silent", "--show-error", "--max-time", "10", "--cacert", str(tls_files.ca_cert)]
        + list(args),
        capture_output=True,
        timeout=30,
        check=False,
    )


def url(site: Site, path: str) -> str:
    return f"https://localhost:{site.server.port}{path}"


def status_and_body(result: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes]:
    # Run with -w '\n%{http_code}': the body, then the status on a line of its own.
    assert result.returncode == 0, result.stderr
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


def test_curl_range_single(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(
        curl, tls_files, "-r", "1000-1999", "-w", "\n%{http_code}", url(site, "/assets/big.bin")
    )
    assert status_and_body(result) == (206, site.big[1000:2000])


def test_curl_range_suffix_and_open(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-r", "-500", "-w", "\n%{http_code}", url(site, "/download"))
    assert status_and_body(result) == (206, site.big[-500:])
    result = run_curl(curl, tls_files, "-r", "299990-", "-i", url(site, "/assets/big.bin"))
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert b"content-range: bytes 299990-299999/300000" in head.lower()
    assert body == site.big[299990:]


def test_curl_multiple_ranges_are_multipart_byteranges(
    curl: str, tls_files: TLSFiles, site: Site
) -> None:
    result = run_curl(curl, tls_files, "-r", "0-9,100-109,-5", "-i", url(site, "/assets/big.bin"))
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    content_type = next(
        line for line in head.split(b"\r\n") if line.lower().startswith(b"content-type:")
    )
    boundary = content_type.split(b"boundary=")[1].strip()
    parts = body.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    found = []
    for part in parts[1:-1]:
        part_head, _, data = part.partition(b"\r\n\r\n")
        assert b"content-type: application/octet-stream" in part_head
        crange = part_head.split(b"content-range: bytes ")[1].split(b"/")[0]
        start, end = (int(n) for n in crange.split(b"-"))
        assert data.removesuffix(b"\r\n") == site.big[start : end + 1]
        found.append((start, end))
    assert found == [(0, 9), (100, 109), (299995, 299999)]


def test_curl_unsatisfiable_range_is_416(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-r", "400000-", "-i", url(site, "/assets/big.bin"))
    head = result.stdout.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 416")
    assert b"content-range: bytes */300000" in head


def test_curl_if_modified_since_gives_304(
    curl: str, tls_files: TLSFiles, site: Site, tmp_path: Path
) -> None:
    # -z FILE sends If-Modified-Since with that file's time: the served file itself.
    target = str(site.root / "hello.txt")
    result = run_curl(
        curl, tls_files, "-z", target, "-w", "%{http_code}", url(site, "/assets/hello.txt")
    )
    assert result.stdout == b"304"
    # A time before the file's: the file is sent.
    older = tmp_path / "older"
    older.write_text("")
    os.utime(older, (1_000_000_000, 1_000_000_000))
    result = run_curl(
        curl, tls_files, "-z", str(older), "-w", "\n%{http_code}", url(site, "/assets/hello.txt")
    )
    assert status_and_body(result) == (200, b"Hello, static world!\n")
    # -z -FILE sends If-Unmodified-Since: the file changed after 2001, so 412.
    result = run_curl(
        curl, tls_files, "-z", f"-{older}", "-w", "\n%{http_code}", url(site, "/assets/hello.txt")
    )
    assert status_and_body(result)[0] == 412


def test_curl_etag_round_trip_gives_304(
    curl: str, tls_files: TLSFiles, site: Site, tmp_path: Path
) -> None:
    etags = tmp_path / "etags"
    first = run_curl(
        curl,
        tls_files,
        "--etag-save",
        str(etags),
        "-w",
        "\n%{http_code}",
        url(site, "/assets/hello.txt"),
    )
    assert status_and_body(first)[0] == 200
    assert etags.read_text().startswith('"')
    again = run_curl(
        curl,
        tls_files,
        "--etag-compare",
        str(etags),
        "-w",
        "%{http_code}",
        url(site, "/assets/hello.txt"),
    )
    assert again.stdout == b"304"


@pytest.mark.parametrize(
    ("accept", "coding"), [("br", "br"), ("gzip", "gzip"), ("gzip, br", "br"), ("identity", None)]
)
def test_curl_compressed_picks_the_precompressed_sibling(
    curl: str, tls_files: TLSFiles, site: Site, accept: str, coding: str | None
) -> None:
    result = run_curl(
        curl,
        tls_files,
        "--compressed",
        "-H",
        f"Accept-Encoding: {accept}",
        "-D",
        "-",
        "-o",
        "/dev/null",
        url(site, "/assets/style.css"),
    )
    head = result.stdout.lower()
    assert b"vary: accept-encoding" in head
    assert b"content-type: text/css; charset=utf-8" in head
    if coding is None:
        assert b"content-encoding" not in head
    else:
        assert f"content-encoding: {coding}".encode() in head
    body = run_curl(curl, tls_files, "--compressed", url(site, "/assets/style.css")).stdout
    assert body == CSS


def test_curl_head_sends_no_body(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-I", url(site, "/assets/big.bin"))
    head = result.stdout.lower()
    assert head.startswith(b"http/1.1 200")
    assert b"content-length: 300000" in head
    assert b"accept-ranges: bytes" in head
    assert head.endswith(b"\r\n\r\n")


def test_curl_directory_redirects_then_serves_index(
    curl: str, tls_files: TLSFiles, site: Site
) -> None:
    result = run_curl(
        curl, tls_files, "-w", "%{http_code} %{redirect_url}", url(site, "/assets/docs")
    )
    assert result.stdout == f"308 {url(site, '/assets/docs/')}".encode()
    result = run_curl(curl, tls_files, "-L", url(site, "/assets/docs"))
    assert result.stdout == b"<h1>docs</h1>\n"


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../outside.txt",
        "/assets/%2e%2e/outside.txt",
        "/assets/%2E%2E/%2e%2e/outside.txt",
        "/assets/..%2foutside.txt",
        "/assets/..%2Foutside.txt",
        "/assets/%2e%2e%2foutside.txt",
        "/assets/docs/..%2f..%2foutside.txt",
        "/assets/..%5coutside.txt",
        "/assets/escape.txt",
        "/assets/.env",
        "/assets/%2eenv",
        "/assets/hello.txt%00.css",
        "/assets//etc/passwd",
        "/assets/%2fetc%2fpasswd",
    ],
)
def test_curl_traversal_is_refused(curl: str, tls_files: TLSFiles, site: Site, path: str) -> None:
    result = run_curl(curl, tls_files, "--path-as-is", "-w", "\n%{http_code}", url(site, path))
    status, body = status_and_body(result)
    assert status in (400, 404), (path, status)
    assert SECRET not in body
    assert b"hunter2" not in body
    assert b"root:" not in body


def test_symlink_inside_the_directory_is_served(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-w", "\n%{http_code}", url(site, "/assets/alias.txt"))
    assert status_and_body(result) == (200, b"Hello, static world!\n")


def test_client_conditional_and_range(tls_files: TLSFiles, site: Site) -> None:
    async def main() -> None:
        base = f"https://localhost:{site.server.port}"
        async with Client(base, ca=tls_files.ca_cert) as client:
            first = await client.get("/assets/big.bin")
            assert first.status == 200
            assert first.content == site.big
            etag = first.headers["etag"]
            modified = first.headers["last-modified"]
            again = await client.get("/assets/big.bin", headers={"If-None-Match": etag})
            assert again.status == 304
            assert again.headers["etag"] == etag
            assert again.content == b""
            since = await client.get("/assets/big.bin", headers={"If-Modified-Since": modified})
            assert since.status == 304
            part = await client.get(
                "/assets/big.bin", headers={"Range": "bytes=5-14", "If-Range": etag}
            )
            assert part.status == 206
            assert part.content == site.big[5:15]
            # A stale If-Range: the whole file, not the range.
            stale = await client.get(
                "/assets/big.bin", headers={"Range": "bytes=5-14", "If-Range": '"old"'}
            )
            assert stale.status == 200
            assert len(stale.content) == len(site.big)
            refused = await client.post("/assets/big.bin", content=b"x")
            assert refused.status == 405
            # The server goes on serving on the same connection.
            assert (await client.get("/assets/hello.txt")).status == 200

    asyncio.run(main())


RANGE_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120).map(
        # A header value has no whitespace at its ends (RFC 9110 5.5); the client refuses one.
        lambda t: ("bytes=" + t).rstrip()
    ),
    st.lists(
        st.tuples(
            st.one_of(st.just(""), st.integers(0, 400_000).map(str), st.just("9" * 30)),
            st.one_of(st.just(""), st.integers(0, 400_000).map(str)),
        ),
        min_size=1,
        max_size=20,
    ).map(lambda specs: "bytes=" + ",".join(f"{a}-{b}" for a, b in specs)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=RANGE_TEXT)
def test_hostile_ranges_over_tls(tls_files: TLSFiles, site: Site, value: str) -> None:
    async def main() -> None:
        base = f"https://localhost:{site.server.port}"
        async with Client(base, ca=tls_files.ca_cert) as client:
            response = await client.get("/assets/big.bin", headers={"Range": value})
            body = response.content
            assert response.status in (200, 206, 416), value
            assert len(body) == int(response.headers.get("content-length", "0"))
            if response.status == 200:
                assert body == site.big
            elif "content-range" in response.headers and response.status == 206:
                span = response.headers["content-range"].split()[1].split("/")[0]
                start, end = (int(n) for n in span.split("-"))
                assert body == site.big[start : end + 1]
            # The connection and the server serve on.
            assert (await client.get("/assets/hello.txt")).status == 200

    asyncio.run(main())


def test_bare_static_files_handler(curl: str, tls_files: TLSFiles, site: Site) -> None:
    with serve_in_thread(StaticFiles(site.root), tls_files) as server:
        base = f"https://localhost:{server.port}"
        result = run_curl(curl, tls_files, "-r", "0-4", "-w", "\n%{http_code}", f"{base}/hello.txt")
        assert status_and_body(result) == (206, b"Hello")
        result = run_curl(curl, tls_files, "-w", "\n%{http_code}", f"{base}/missing.txt")
        assert status_and_body(result) == (404, b"Not Found")
        result = run_curl(curl, tls_files, "-X", "DELETE", "-i", f"{base}/hello.txt")
        assert result.stdout.startswith(b"HTTP/1.1 405")
        assert b"allow: GET, HEAD" in result.stdout


def test_curl_prefix_without_slash_redirects(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-w", "%{http_code} %{redirect_url}", url(site, "/assets"))
    assert result.stdout == f"308 {url(site, '/assets/')}".encode()


def test_curl_a_gz_file_asked_for_is_an_archive(curl: str, tls_files: TLSFiles, site: Site) -> None:
    result = run_curl(curl, tls_files, "-i", url(site, "/assets/style.css.gz"))
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert b"content-type: application/gzip" in head.lower()
    assert b"content-encoding" not in head.lower()
    assert gzip.decompress(body) == CSS
