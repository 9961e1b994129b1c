"""The same apps on uvicorn and on this server give the same answers, over TLS.

One set of requests (JSON, streaming, large bodies, HEAD, errors, a client that goes away)
against a Starlette app served by uvicorn (h11 and httptools) and by ``framework serve``:
status, headers (but ``date`` and ``server``) and bodies must be equal. Then our ``App``
served by uvicorn answers the same requests as when served by our own server.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from framework import Client
from tests.conftest import TLSFiles, require_module
from tests.e2e.serve_cli import REPO, STARTUP_TIMEOUT, Served, environment, serve_cli

pytestmark = pytest.mark.slow

BIG = bytes(range(256)) * (5 * 4096 + 3)  # 5 MiB and a bit
UVICORN_RUNNING = re.compile(r"Uvicorn running on https://127\.0\.0\.1:(\d+)")
SERVING = re.compile(r"framework: serving on https://localhost:(\d+)/")


def _env(home: Path) -> dict[str, str]:
    env = environment(home)
    env["PYTHONHASHSEED"] = "0"  # Starlette's Allow header lists a set: one order for both
    return env


@contextmanager
def uvicorn(app: str, tls_files: TLSFiles, http: str, home: Path) -> Iterator[int]:
    """``uvicorn APP`` on 127.0.0.1 with the test CA's certificate; yields its port."""
    require_module("uvicorn")
    if http == "httptools":
        require_module("httptools")
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--http",
        http,
        "--ssl-certfile",
        str(tls_files.server_cert),
        "--ssl-keyfile",
        str(tls_files.server_key),
        "--no-access-log",
    ]
    process = subprocess.Popen(
        args,
        cwd=REPO,
        env=_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)
    import threading

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            served.lines.put(line.rstrip("\n"))
        served.lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield int(served.wait_for(UVICORN_RUNNING, timeout=STARTUP_TIMEOUT).group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STARTUP_TIMEOUT)
        reader.join(timeout=STARTUP_TIMEOUT)
        assert process.stderr is not None
        process.stderr.close()


@contextmanager
def ours(app: str, tls_files: TLSFiles, home: Path) -> Iterator[int]:
    args = [app, "--port", "0", "--certfile", str(tls_files.server_cert)]
    args += ["--keyfile", str(tls_files.server_key), "--no-access-log"]
    with serve_cli(args, env=_env(home), cwd=REPO) as running:
        yield int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))


Answer = tuple[int, list[tuple[str, str]], bytes]


async def _exchange(client: Client, method: str, path: str, body: bytes | None) -> Answer:
    response = await client.request(method, path, content=body)
    data = await response.aread()
    headers = sorted(
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in response.headers.raw
        if k not in (b"date", b"server")
    )
    return response.status, headers, bytes(data)


def answers(port: int, tls_files: TLSFiles, requests: list[tuple[str, str, bytes | None]]) -> Any:
    async def main() -> Any:
        async with Client(f"https://localhost:{port}", ca=tls_files.ca_cert) as client:
            found = [await _exchange(client, *r) for r in requests]
            # A client that goes away mid-stream: the app must see it leave.
            async with Client(f"https://localhost:{port}", ca=tls_files.ca_cert) as leaving:
                async with leaving.stream("GET", "/forever") as response:
                    async for _ in response.aiter_bytes():
                        break
            left = await client.get("/left")
            found.append((left.status, await left.aread()))
            return found

    return asyncio.run(asyncio.wait_for(main(), 30))


STARLETTE_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/json?a=1&b=%C3%A9", None),
    ("GET", "/stream?n=40&size=3000", None),
    ("GET", "/stream?n=0", None),
    ("POST", "/echo", BIG),
    ("PUT", "/echo", b""),
    ("HEAD", "/json", None),
    ("HEAD", "/stream", None),
    ("GET", "/state", None),
    ("GET", "/error", None),
    ("GET", "/nowhere", None),
    ("POST", "/json", b"x"),
    ("GET", "/status/418", None),
    ("GET", "/status/204", None),
    ("GET", "/status/304", None),
]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_asgi_starlette_on_uvicorn_and_here_answers_equal(
    tls_files: TLSFiles, tmp_path: Path, http: str
) -> None:
    app = "tests.e2e.asgi_apps:starlette_app"
    with uvicorn(app, tls_files, http, tmp_path / "home") as port:
        theirs = answers(port, tls_files, STARLETTE_REQUESTS)
    with ours(app, tls_files, tmp_path / "home") as port:
        mine = answers(port, tls_files, STARLETTE_REQUESTS)
    assert theirs[-1] == mine[-1] == (200, b"the app saw the client leave")
    for request, a, b in zip(STARLETTE_REQUESTS, theirs, mine, strict=False):
        if http == "httptools" and request[0] == "HEAD":
            # The one place the two uvicorns differ: to HEAD of a response without a
            # Content-Length, httptools leaves out the Transfer-Encoding that a GET would
            # get; h11 (uvicorn's other mode, and this server) sends it, as RFC 9110 9.3.2
            # prefers. Everything else must match.
            b = (b[0], [h for h in b[1] if h != ("transfer-encoding", "chunked")], b[2])
        assert a == b, f"{request[0]} {request[1]}: uvicorn {http} {a[:2]} != ours {b[:2]}"


NATIVE_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/", None),
    ("GET", "/users/7?q=caf%C3%A9", None),
    ("GET", "/users/x", None),
    ("POST", "/echo", BIG),
    ("GET", "/stream", None),
    ("HEAD", "/", None),
    ("HEAD", "/stream", None),
    ("GET", "/error", None),
    ("GET", "/nowhere", None),
    ("POST", "/", b"x"),
    ("GET", "/started", None),
]


def test_asgi_our_app_on_uvicorn_answers_as_on_our_server(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    app = "tests.e2e.asgi_apps:native_app"
    with uvicorn(app, tls_files, "h11", tmp_path / "home") as port:
        theirs = answers(port, tls_files, NATIVE_REQUESTS)
    with ours(app, tls_files, tmp_path / "home") as port:
        mine = answers(port, tls_files, NATIVE_REQUESTS)
    assert (
        theirs[-2]
        == mine[-2]
        == (
            200,
            [
                ("content-length", "7"),
                ("content-type", "text/plain; charset=utf-8"),
                ("x-handled-by", "framework"),
            ],
            b"started",
        )
    )
    for request, a, b in zip(NATIVE_REQUESTS, theirs, mine, strict=False):
        assert a == b, f"{request[0]} {request[1]}: uvicorn {a[:2]} != ours {b[:2]}"
