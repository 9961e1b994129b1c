"""examples/site.py served by ``framework serve`` over TLS: a browser's session through curl's
cookie jar, a 50 MB multipart upload with bounded server memory, the JSON API by our client."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework import Client
from tests.conftest import TLSFiles, require_tool
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, Served, environment, serve_cli

pytestmark = pytest.mark.tool


@pytest.fixture(scope="module")
def site(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("home")
    args = [
        "examples.site:app",
        "--port",
        "0",
        "--certfile",
        str(tls_files.server_cert),
        "--keyfile",
        str(tls_files.server_key),
    ]
    with serve_cli(args, env=environment(home), cwd=REPO) as running:
        running.port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        yield running


def curl(tls_files: TLSFiles, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("curl"), "--silent", "--show-error", "--max-time", "60"]
        + ["--cacert", str(tls_files.ca_cert), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_session_survives_across_requests_in_curls_cookie_jar(
    site: Served, tls_files: TLSFiles, tmp_path: Path
) -> None:
    jar = str(tmp_path / "jar")
    base = f"https://localhost:{site.port}"
    first = curl(tls_files, "-c", jar, "-b", jar, base + "/")
    assert "Hello, stranger." in first.stdout, first.stderr
    posted = curl(
        tls_files, "-c", jar, "-b", jar, "-d", "name=Ada <b>", "-w", "%{http_code}", base + "/hello"
    )
    assert posted.stdout == "303", posted.stderr
    cookie_line = next(line for line in Path(jar).read_text().splitlines() if "\tsession\t" in line)
    # curl marks HttpOnly cookies with this prefix; the fourth field is "secure".
    assert cookie_line.startswith("#HttpOnly_localhost")
    assert cookie_line.split("\t")[3] == "TRUE"
    again = curl(tls_files, "-c", jar, "-b", jar, base + "/")
    assert "Hello again, Ada &lt;b&gt;." in again.stdout
    # The page's stylesheet, as a browser fetches it next.
    style = curl(tls_files, "-D", "-", base + "/assets/style.css")
    assert style.stdout.rstrip().endswith("margin: 2rem auto; }")
    assert "content-type: text/css; charset=utf-8" in style.stdout.lower()
    etag = re.search(r"^etag: (.+?)\r?$", style.stdout, re.I | re.M)
    assert etag, style.stdout
    again = curl(
        tls_files,
        "-H",
        f"If-None-Match: {etag.group(1)}",
        "-w",
        "%{http_code}",
        base + "/assets/style.css",
    )
    assert again.stdout == "304"
    # Without the jar, nobody is known.
    assert "Hello, stranger." in curl(tls_files, base + "/").stdout


def rss_peak_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1))


@pytest.mark.slow
def test_50_mb_upload_with_curl_keeps_server_memory_bounded(
    site: Served, tls_files: TLSFiles, tmp_path: Path
) -> None:
    if not Path(f"/proc/{site.process.pid}/status").exists():
        pytest.skip("needs /proc to read the server's memory")
    data = os.urandom(1024 * 1024) * 50
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    url = f"https://localhost:{site.port}/upload"
    small = curl(tls_files, "-F", f"file=@{REPO / 'README.md'}", url)
    assert '"filename":"README.md"' in small.stdout, small.stderr
    before = rss_peak_kib(site.process.pid)
    result = curl(tls_files, "-F", f"file=@{path};filename=big.bin", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f'{{"filename":"big.bin","size":{len(data)},"sha256":"{hashlib.sha256(data).hexdigest()}"}}'
    )
    grown = rss_peak_kib(site.process.pid) - before
    print(f"server peak RSS grew by {grown} KiB for a 50 MiB upload")
    assert grown < 16 * 1024, f"peak RSS grew {grown} KiB for a 50 MiB upload"


def test_upload_over_the_routes_limit_is_413(
    site: Served, tls_files: TLSFiles, tmp_path: Path
) -> None:
    url = f"https://localhost:{site.port}/hello"  # the server's default 1 MiB
    path = tmp_path / "two.bin"
    path.write_bytes(b"x" * (2 * 1024 * 1024))
    result = curl(tls_files, "-F", f"file=@{path}", "-w", "%{http_code}", "-o", "/dev/null", url)
    assert result.stdout == "413", result.stderr


def test_json_api_with_our_client(site: Served, tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with Client(f"https://localhost:{site.port}", ca=tls_files.ca_cert) as client:
            made = await client.post("/api/notes", json={"text": "hi", "tags": ["a"]})
            assert made.status == 201
            bad = await client.post("/api/notes", json={"text": 1})
            assert bad.status == 422
            assert bad.json()["detail"][0]["loc"] == ["body", "text"]
            listed = await client.get("/api/notes", params={"tag": "a", "limit": "5"})
            assert [n["text"] for n in listed.json()] == ["hi"]
            wrong = await client.get("/api/notes?limit=lots")
            assert wrong.status == 422
            assert wrong.json()["detail"][0]["msg"] == "expected an integer"
            slash = await client.get("/api/notes/", follow_redirects=False)
            assert (slash.status, slash.headers["location"]) == (308, "/api/notes")

    asyncio.run(main())


def test_site_on_uvicorn_keeps_the_session_and_takes_uploads(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    from tests.e2e.test_asgi_uvicorn import uvicorn

    jar = str(tmp_path / "jar")
    with uvicorn("examples.site:app", tls_files, "h11", tmp_path / "home") as port:
        base = f"https://localhost:{port}"
        posted = curl(tls_files, "-c", jar, "-b", jar, "-d", "name=Bo", base + "/hello")
        assert posted.returncode == 0, posted.stderr
        cookie = next(line for line in Path(jar).read_text().splitlines() if "\tsession\t" in line)
        assert cookie.split("\t")[3] == "TRUE"  # Secure: uvicorn's scope says https
        assert "Hello again, Bo." in curl(tls_files, "-c", jar, "-b", jar, base + "/").stdout
        data = os.urandom(3 * 1024 * 1024)
        (tmp_path / "f.bin").write_bytes(data)
        uploaded = curl(tls_files, "-F", f"file=@{tmp_path / 'f.bin'}", base + "/upload")
        assert hashlib.sha256(data).hexdigest() in uploaded.stdout, uploaded.stderr


@pytest.mark.parametrize(
    "cookie",
    [
        "session=" + "A" * 8000,
        "session=forged.0.sig; session=second",
        'session="; é\u2603; =;;; \\"x' + "=" * 500,
        "; ".join(f"c{i}={i}" for i in range(300)),
    ],
    ids=["huge", "forged-twice", "garbage", "many"],
)
def test_hostile_cookie_headers_are_a_fresh_session(
    site: Served, tls_files: TLSFiles, cookie: str
) -> None:
    result = curl(tls_files, "-H", f"Cookie: {cookie}", f"https://localhost:{site.port}/")
    assert result.returncode == 0, result.stderr
    assert "Hello, stranger." in result.stdout
