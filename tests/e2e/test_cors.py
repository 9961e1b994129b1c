"""CORS over real TLS: headless Chromium calling a cross-origin API, and curl sending the
preflight Chromium sends.

The page is served by one app; its script calls an API served by a second app on another
port (another origin) with a ``PUT`` carrying a JSON body and a custom header, which makes
the browser send a preflight first. The call succeeds only when the API has the middleware.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework import App, CORSMiddleware, Request, Response, Server
from framework.messages import Handler
from tests.conftest import TLSFiles, require_tool, serve_in_thread

pytestmark = pytest.mark.tool

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cors</title></head><body>
<script>
function report(text) {
  fetch("/report", {method: "POST", body: text});
}
fetch("%(api)s/api/items/7", {
  method: "PUT",
  headers: {"Content-Type": "application/json", "X-Token": "secret-token"},
  body: JSON.stringify({name: "seven"}),
}).then(r => r.text().then(t => report("ok " + r.status + " " + t
                                         + " " + r.headers.get("x-request-id"))),
        e => report("error " + e));
</script></body></html>
"""


def api_app(cors: bool, seen: list[dict[str, Any]]) -> App:
    app = App()

    @app.middleware
    async def record(request: Request, call_next: Handler) -> Response:
        seen.append({"method": request.method, "headers": dict(request.headers.items())})
        return await call_next(request)

    if cors:
        app.middleware(
            CORSMiddleware(
                ["https://localhost:1"],  # replaced by the page's origin below
                allow_methods=["GET", "PUT"],
                allow_headers=["X-Token", "Content-Type"],
                expose_headers=["X-Request-Id"],
            )
        )

    @app.put("/api/items/{item:int}")
    async def put_item(request: Request, item: int) -> Response:
        seen.append({"route": "put", "body": await request.json()})
        return Response(f"stored {item}", headers={"X-Request-Id": "r-1"})

    return app


def page_app(reports: list[str], api_origin: list[str]) -> App:
    app = App()

    @app.get("/")
    async def page(request: Request) -> Response:
        return Response(PAGE % {"api": api_origin[0]}, media_type="text/html; charset=utf-8")

    @app.post("/report")
    async def report(request: Request) -> str:
        reports.append(await request.text())
        return "thanks"

    return app


def allow_origin(app: App, origin: str) -> None:
    for mw in app.middleware_stack:
        if isinstance(mw, CORSMiddleware):
            mw.origins = frozenset({origin})


@pytest.fixture(scope="module")
def chromium(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Chromium's path and a HOME whose NSS database trusts the test CA (and nothing else)."""
    browser = require_tool("chromium")
    certutil = require_tool("certutil")
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (
        ["-N", "--empty-password"],
        ["-A", "-t", "C,,", "-n", "framework test CA", "-i", str(tls_files.ca_cert)],
    ):
        subprocess.run([certutil, "-d", f"sql:{nssdb}", *args], check=True, timeout=30)
    return browser, home


def run_page(browser: str, home: Path, url: str, reports: list[str]) -> str:
    """Load ``url`` in headless Chromium; the report its script posts back (60 s at most)."""
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",  # tests run as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={home / 'profile'}",
        url,
    ]
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: its helpers end with it
    )
    try:
        deadline = time.monotonic() + 60
        while not reports and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert reports, f"the page reported nothing (chromium exit code {proc.poll()})"
        return reports[0]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture
def two_origins(
    request: pytest.FixtureRequest, tls_files: TLSFiles
) -> Iterator[tuple[Server, App, list[str], list[dict[str, Any]]]]:
    cors = bool(request.param)
    reports: list[str] = []
    seen: list[dict[str, Any]] = []
    api_origin: list[str] = []
    api = api_app(cors, seen)
    with serve_in_thread(page_app(reports, api_origin), tls_files) as page_server:
        allow_origin(api, f"https://localhost:{page_server.port}")
        with serve_in_thread(api, tls_files) as api_server:  # another port: another origin
            api_origin.append(f"https://localhost:{api_server.port}")
            yield page_server, api, reports, seen


@pytest.mark.slow
@pytest.mark.parametrize("two_origins", [True, False], ids=["with-cors", "without"], indirect=True)
def test_chromium_cross_origin_fetch(
    chromium: tuple[str, Path],
    two_origins: tuple[Server, App, list[str], list[dict[str, Any]]],
) -> None:
    browser, home = chromium
    page_server, api, reports, seen = two_origins
    outcome = run_page(browser, home, f"https://localhost:{page_server.port}/", reports)
    preflights = [s for s in seen if s.get("method") == "OPTIONS"]
    # The browser sent a preflight either way, as the Fetch standard says it must.
    assert preflights, seen
    asked = preflights[0]["headers"]
    assert asked["access-control-request-method"] == "PUT"
    assert asked["access-control-request-headers"] == "content-type,x-token"
    assert asked["origin"] == f"https://localhost:{page_server.port}"
    routed = [s for s in seen if s.get("route") == "put"]
    if any(isinstance(mw, CORSMiddleware) for mw in api.middleware_stack):
        assert outcome == "ok 200 stored 7 r-1"
        assert routed == [{"route": "put", "body": {"name": "seven"}}]
    else:
        assert outcome.startswith("error TypeError"), outcome
        # Without CORS the preflight got the router's 405 and the PUT was never sent.
        assert routed == []


# Chromium 150's preflight for the fetch above, header for header (as recorded by the test
# above), for machines without Chromium.
def chromium_preflight(origin: str) -> list[str]:
    return [
        "-X",
        "OPTIONS",
        "-H",
        "Accept: */*",
        "-H",
        "Access-Control-Request-Method: PUT",
        "-H",
        "Access-Control-Request-Headers: content-type,x-token",
        "-H",
        f"Origin: {origin}",
        "-H",
        "Sec-Fetch-Mode: cors",
        "-H",
        "Sec-Fetch-Site: same-site",
        "-H",
        "Sec-Fetch-Dest: empty",
        "-H",
        f"Referer: {origin}/",
        "-H",
        "Accept-Encoding: gzip, deflate, br, zstd",
        "-H",
        "Accept-Language: en-US,en;q=0.9",
        "-A",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/150.0.0.0 Safari/537.36",
    ]


def curl_head(curl: str, tls_files: TLSFiles, *args: str) -> tuple[int, dict[str, str]]:
    result = subprocess.run(
        [
            curl,
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--cacert",
            str(tls_files.ca_cert),
            "-D",
            "-",
            "-o",
            "/dev/null",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(lines[0].split()[1]), headers


@pytest.fixture(scope="module")
def curl() -> str:
    return require_tool("curl")


@pytest.fixture(scope="module")
def api_server(tls_files: TLSFiles) -> Iterator[tuple[Server, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    app = api_app(True, seen)
    allow_origin(app, "https://app.example")
    with serve_in_thread(app, tls_files) as server:
        yield server, seen


def test_curl_chromium_preflight_is_answered_before_routing(
    curl: str, tls_files: TLSFiles, api_server: tuple[Server, list[dict[str, Any]]]
) -> None:
    server, seen = api_server
    target = f"https://localhost:{server.port}/api/items/7"
    status, headers = curl_head(curl, tls_files, *chromium_preflight("https://app.example"), target)
    assert status == 204, headers
    assert headers["access-control-allow-origin"] == "https://app.example", headers
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "content-type, x-token"
    assert headers["access-control-max-age"] == "600"
    assert headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in headers
    assert not any(s.get("route") for s in seen)


def test_curl_preflight_from_another_origin_is_refused(
    curl: str, tls_files: TLSFiles, api_server: tuple[Server, list[dict[str, Any]]]
) -> None:
    server, _ = api_server
    target = f"https://localhost:{server.port}/api/items/7"
    status, headers = curl_head(
        curl, tls_files, *chromium_preflight("https://evil.example"), target
    )
    assert status == 400
    assert "access-control-allow-origin" not in headers
    assert headers["vary"] == "Origin"


def test_curl_actual_request_gets_cors_headers(
    curl: str, tls_files: TLSFiles, api_server: tuple[Server, list[dict[str, Any]]]
) -> None:
    server, _ = api_server
    target = f"https://localhost:{server.port}/api/items/7"
    body = ["-X", "PUT", "-H", "Content-Type: application/json", "--data", '{"name": "x"}']
    status, headers = curl_head(curl, tls_files, *body, "-H", "Origin: https://app.example", target)
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-expose-headers"] == "X-Request-Id"
    assert headers["vary"] == "Origin"
    status, headers = curl_head(
        curl, tls_files, *body, "-H", "Origin: https://evil.example", target
    )
    assert status == 200
    assert "access-control-allow-origin" not in headers
    # Without Origin the answer still varies by it: a cache must not reuse it for a page.
    status, headers = curl_head(curl, tls_files, *body, target)
    assert headers["vary"] == "Origin"
