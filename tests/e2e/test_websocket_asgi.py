"""The ASGI ``websocket`` scope both ways, over TLS, with the ``websockets`` library as client.

Starlette and FastAPI WebSocket endpoints served by ``framework serve``; our ``App``'s
WebSocket routes served by uvicorn (both of its WebSocket implementations). Each way the
same exchanges: echo of text and bytes, a subprotocol, a close code from the app, a refusal
(403), a denial response with its own status and body, path parameters.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import TLSFiles
from tests.e2e.serve_cli import REPO, STARTUP_TIMEOUT, Served, environment, serve_cli
from tests.e2e.test_asgi_uvicorn import require_module

SERVING = re.compile(r"framework: serving on https://localhost:(\d+)/")
UVICORN_RUNNING = re.compile(r"Uvicorn running on https://127\.0\.0\.1:(\d+)")


@contextmanager
def ours(app: str, tls_files: TLSFiles, home: Path) -> Iterator[int]:
    args = [app, "--port", "0", "--certfile", str(tls_files.server_cert)]
    args += ["--keyfile", str(tls_files.server_key), "--no-access-log"]
    with serve_cli(args, env=environment(home), cwd=REPO) as running:
        yield int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))


@contextmanager
def uvicorn(app: str, tls_files: TLSFiles, ws: str, home: Path) -> Iterator[int]:
    """``uvicorn APP --ws WS`` on 127.0.0.1 with the test CA's certificate; yields its port."""
    require_module("uvicorn")
    require_module(ws)
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0"]
    args += ["--ws", ws, "--ssl-certfile", str(tls_files.server_cert)]
    args += ["--ssl-keyfile", str(tls_files.server_key), "--no-access-log"]
    process = subprocess.Popen(
        args,
        cwd=REPO,
        env=environment(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)

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


def exchanges(port: int, tls_files: TLSFiles, *, deny: bool = True) -> dict[str, Any]:
    """What a ``websockets`` client sees from each route of ``tests/e2e/ws_apps.py``."""
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    base = f"wss://localhost:{port}"

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with connect(base + "/echo", ssl=context, subprotocols=["chat.v1"]) as ws:
            await ws.send("héllo")
            await ws.send(b"\x00\xff" * 40000)
            await ws.send(["frag", "mented"])
            seen["echo"] = [await ws.recv(), len(await ws.recv()), await ws.recv()]
            seen["subprotocol"] = ws.subprotocol
        async with connect(base + "/close", ssl=context) as ws:
            await ws.send("bye")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            seen["close"] = (closed.value.rcvd.code, closed.value.rcvd.reason)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(base + "/refuse", ssl=context):
                pass
        seen["refuse"] = refused.value.response.status_code
        if deny:
            with pytest.raises(InvalidStatus) as denied:
                async with connect(base + "/deny", ssl=context):
                    pass
            seen["deny"] = (denied.value.response.status_code, denied.value.response.body)
        async with connect(base + "/rooms/kitchen", ssl=context) as ws:
            seen["path"] = json.loads(await ws.recv())["room"]
        return seen

    return asyncio.run(asyncio.wait_for(main(), 30))


EXPECTED = {
    "echo": ["héllo", 80000, "fragmented"],
    "subprotocol": "chat.v1",
    "close": (4001, "done here"),
    "refuse": 403,
    "path": "kitchen",
}


def check(seen: dict[str, Any]) -> None:
    status, body = seen.pop("deny")
    assert seen == EXPECTED
    assert status == 401
    assert b"no token" in body


def test_starlette_websocket_on_our_server(tls_files: TLSFiles, tmp_path: Path) -> None:
    with ours("tests.e2e.ws_apps:starlette_ws", tls_files, tmp_path) as port:
        seen = exchanges(port, tls_files)
    check(seen)


def test_fastapi_websocket_on_our_server(tls_files: TLSFiles, tmp_path: Path) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))

    async def main(port: int) -> list[Any]:
        base = f"wss://localhost:{port}"
        async with connect(base + "/echo", ssl=context) as ws:
            await ws.send("one")
            first = await ws.recv()
        async with connect(base + "/items/7", ssl=context) as ws:
            await ws.send(json.dumps({"q": 1}))
            item = json.loads(await ws.recv())
        return [first, item]

    with ours("tests.e2e.ws_apps:fastapi_ws", tls_files, tmp_path) as port:
        got = asyncio.run(asyncio.wait_for(main(port), 30))
    assert got == ["one", {"item": 7, "got": {"q": 1}}]


@pytest.mark.slow
@pytest.mark.parametrize("ws", ["websockets", "wsproto"])
def test_our_app_websockets_on_uvicorn(tls_files: TLSFiles, tmp_path: Path, ws: str) -> None:
    with uvicorn("tests.e2e.ws_apps:native_ws", tls_files, ws, tmp_path) as port:
        seen = exchanges(port, tls_files)
    check(seen)


def test_our_app_websockets_on_our_server_match(tls_files: TLSFiles, tmp_path: Path) -> None:
    with ours("tests.e2e.ws_apps:native_ws", tls_files, tmp_path) as port:
        seen = exchanges(port, tls_files)
    check(seen)


def test_malformed_handshake_to_an_asgi_app_is_400(tls_files: TLSFiles, tmp_path: Path) -> None:
    async def main(port: int) -> tuple[int, bytes]:
        from framework import Client

        async with Client(ca=tls_files.ca_cert) as client:
            headers = {"Upgrade": "websocket", "Connection": "Upgrade"}  # no key, no version
            response = await client.get(f"https://localhost:{port}/echo", headers=headers)
            return response.status, response.content

    with ours("tests.e2e.ws_apps:starlette_ws", tls_files, tmp_path) as port:
        status, body = asyncio.run(asyncio.wait_for(main(port), 30))
    assert status == 400
    assert b"Sec-WebSocket-Version" in body
