"""The server as curl sees it: verification with the test CA, HTTP/1.1, uploads, HEAD, ALPN."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework import App, Request
from framework.server import Server
from tests.conftest import TLSFiles, require_tool, serve_in_thread

pytestmark = pytest.mark.tool


def make_app() -> App:
    app = App()

    @app.get("/")
    async def hello(request: Request) -> str:
        return "Hello, world!"

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "transfer-encoding": request.headers.get("transfer-encoding"),
        }

    return app


@pytest.fixture(scope="module")
def curl() -> str:
    return require_tool("curl")


@pytest.fixture(scope="module")
def server(tls_files: TLSFiles) -> Iterator[Server]:
    with serve_in_thread(make_app(), tls_files) as running:
        yield running


def run_curl(curl: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [curl, "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def url(server: Server, path: str = "/") -> str:
    return f"https://localhost:{server.port}{path}"


def test_curl_gets_hello_with_the_test_ca(curl: str, server: Server, tls_files: TLSFiles) -> None:
    result = run_curl(curl, "--cacert", str(tls_files.ca_cert), url(server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!"


def test_curl_http11_explicitly(curl: str, server: Server, tls_files: TLSFiles) -> None:
    result = run_curl(
        curl, "--http1.1", "--cacert", str(tls_files.ca_cert), "-w", "%{http_version}", url(server)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!1.1"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_curl_post_data_binary_file(
    curl: str, server: Server, tls_files: TLSFiles, tmp_path: Path, chunked: bool
) -> None:
    data = bytes(range(256)) * 2000
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    result = run_curl(
        curl,
        "--cacert",
        str(tls_files.ca_cert),
        "--data-binary",
        f"@{upload}",
        *extra,
        url(server, "/upload"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "transfer-encoding": "chunked" if chunked else None,
    }


def test_curl_head_has_the_get_length_and_no_body(
    curl: str, server: Server, tls_files: TLSFiles
) -> None:
    result = run_curl(curl, "-I", "--cacert", str(tls_files.ca_cert), url(server))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.lower().splitlines()
    assert lines[0].startswith("http/1.1 200")
    assert "content-length: 13" in lines
    assert "server: framework" in lines
    assert "hello" not in result.stdout.lower()


def test_curl_verbose_shows_alpn_and_tls13(curl: str, server: Server, tls_files: TLSFiles) -> None:
    result = run_curl(curl, "--verbose", "--cacert", str(tls_files.ca_cert), url(server))
    assert result.returncode == 0, result.stderr
    assert "ALPN: server accepted http/1.1" in result.stderr or (
        "ALPN, server accepted to use http/1.1" in result.stderr
    )
    assert "TLSv1.3" in result.stderr


def test_curl_without_the_ca_fails_verification(curl: str, server: Server) -> None:
    # The test CA is in no system trust store, so curl's default verification refuses it.
    result = run_curl(curl, url(server))
    assert result.returncode == 60, result.stderr
    assert result.stdout == ""
