"""``framework.testing``: apps served over real TLS on loopback, with a throwaway CA.

Every test here talks TLS over 127.0.0.1 to a real server made by ``serve_app`` (or its
thread-hosted form), with our client, the stdlib's ``ssl`` and curl.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from framework import App, ClientError, Request, StreamingResponse
from framework.testing import ThrowawayCA, eventually, serve_app, serve_app_in_thread
from tests.conftest import require_module, require_tool

TIMEOUT = 10.0


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(body(), TIMEOUT)

    return asyncio.run(bounded())


def refuses(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port any more."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def make_app(log: list[str] | None = None) -> App:
    app = App()
    events = log if log is not None else []

    @app.on_startup
    async def up() -> None:
        events.append("startup")

    @app.on_shutdown
    async def down() -> None:
        events.append("shutdown")

    @app.get("/json")
    async def json_route(request: Request) -> dict[str, Any]:
        return {"ok": True, "peer": request.tls.peer_common_name if request.tls else None}

    @app.post("/echo")
    async def echo(request: Request) -> bytes:
        return await request.body()

    @app.get("/boom")
    async def boom(request: Request) -> str:
        raise ValueError("handler broke")

    return app


# --- the CA ------------------------------------------------------------------------------------


def test_throwaway_ca_is_ecdsa_fast_and_removed_on_close() -> None:
    started = time.perf_counter()
    with ThrowawayCA() as ca:
        server = ca.server_certificate()
        client = ca.client_certificate()
        elapsed = time.perf_counter() - started
        directory = ca.directory
        assert isinstance(ca.authority.certificate.public_key(), ec.EllipticCurvePublicKey)
        assert ca.server_certificate() is server  # issued once, reused
        # The chain verifies with the stdlib: the CA file is what clients trust.
        ctx = ssl.create_default_context(cafile=str(ca.cert_path))
        ctx.load_cert_chain(client.cert, client.key)
        assert server.key.stat().st_mode & 0o077 == 0  # keys are private to the user
        assert directory.is_dir()
    assert not directory.exists()
    # ECDSA keys: a CA and two leaves take milliseconds (RSA-2048 would take far longer).
    assert elapsed < 2.0, f"CA and two certificates took {elapsed:.3f} s"


def test_throwaway_ca_is_not_the_development_ca(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path / "home"))
    app = make_app()

    async def body() -> None:
        async with serve_app(app) as server:
            assert "framework-test-ca-" in str(server.ca)

    run(body)
    assert not (tmp_path / "home").exists()  # the dev CA was never made or touched


# --- serve_app -------------------------------------------------------------------------------


def test_serve_app_runs_hooks_around_the_block_and_cleans_up() -> None:
    log: list[str] = []
    app = make_app(log)

    async def body() -> tuple[int, Path]:
        before = asyncio.all_tasks()
        async with serve_app(app) as server:
            assert log == ["startup"]
            assert server.url == f"https://127.0.0.1:{server.port}"
            async with server.client() as client:
                response = await client.get("/json")
                assert response.status == 200
                assert response.json() == {"ok": True, "peer": None}
                log.append("request")
            port, ca = server.port, server.ca
        assert log == ["startup", "request", "shutdown"]
        assert asyncio.all_tasks() == before  # no task left behind
        return port, ca

    port, ca = run(body)
    assert refuses(port)
    assert not ca.exists()  # its own throwaway CA is gone


def test_serve_app_with_a_shared_ca_leaves_the_ca_in_place() -> None:
    with ThrowawayCA() as ca:

        async def body() -> None:
            for _ in range(2):
                async with serve_app(make_app(), ca=ca) as server:
                    assert server.ca == ca.cert_path
                    async with server.client() as client:
                        assert (await client.get("/json")).status == 200
                assert ca.cert_path.exists()

        run(body)


def test_serve_app_failing_startup_raises_and_cleans_up() -> None:
    app = make_app()

    @app.on_startup
    async def broken() -> None:
        raise RuntimeError("no database")

    async def body() -> None:
        async with serve_app(app):
            pytest.fail("the block ran although startup failed")

    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(RuntimeError, match="no database"):
        run(body)
    after = set(os.listdir(tempfile.gettempdir()))
    assert not {name for name in after - before if name.startswith("framework-test-ca-")}


def test_handler_exception_is_a_500_visible_to_the_test(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with serve_app(make_app()) as server:
            async with server.client() as client:
                assert server.errors == []
                assert (await client.get("/boom")).status == 500
                assert (await client.get("/json")).status == 200  # still serving
            [error] = server.exceptions
            assert isinstance(error, ValueError)
            assert str(error) == "handler broke"
            assert server.errors[0].levelno == logging.ERROR

    run(body)
    assert "handler broke" in caplog.text


def test_streaming_is_not_buffered() -> None:
    # The handler sends a first piece, then waits for the test to have read it: a server or
    # client that buffered the body would never deliver it, and the read would time out.
    app = App()
    first_read = asyncio.Event()

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first"
            await asyncio.wait_for(first_read.wait(), TIMEOUT)
            yield b"second"

        return StreamingResponse(pieces())

    async def body() -> list[bytes]:
        chunks: list[bytes] = []
        async with serve_app(app) as server, server.client(timeout=5) as client:
            async with client.stream("GET", "/stream") as response:
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    first_read.set()
        return chunks

    assert run(body) == [b"first", b"second"]


def test_client_cancellation_is_seen_by_the_handler() -> None:
    app = App()
    entered = asyncio.Event()
    seen: list[str] = []

    @app.get("/slow")
    async def slow(request: Request) -> str:
        entered.set()
        for _ in range(int(TIMEOUT / 0.01)):  # bounded: gives up after TIMEOUT
            if await request.is_disconnected():
                seen.append("disconnected")
                return "nobody hears this"
            await asyncio.sleep(0.01)
        seen.append("timed out")
        return "late"

    async def body() -> None:
        async with serve_app(app) as server, server.client() as client:
            request = asyncio.create_task(client.get("/slow"))
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            await eventually(lambda: seen != [])
            assert seen == ["disconnected"]

    run(body)


def test_mutual_tls_presents_a_client_certificate_from_the_same_ca() -> None:
    async def body() -> None:
        async with serve_app(make_app(), client_cert="required") as server:
            assert server.client_cert is not None
            async with server.client() as client:
                response = await client.get("/json")
                assert response.json()["peer"] == "test-client"
            async with server.client(cert=False) as client:
                with pytest.raises(ClientError):
                    await client.get("/json")

    run(body)


def test_limits_option_sets_the_servers_limits() -> None:
    async def body() -> None:
        async with serve_app(make_app(), max_body_bytes=10) as server, server.client() as c:
            assert (await c.post("/echo", content=b"0123456789")).status == 200
            assert (await c.post("/echo", content=b"0123456789+")).status == 413

    run(body)


def test_bad_options_say_what_is_wrong() -> None:
    async def unknown_limit() -> None:
        async with serve_app(make_app(), max_body=10):
            pass

    with pytest.raises(TypeError, match="max_body.*fields of ServerConfig"):
        run(unknown_limit)

    class Opaque:
        def __call__(self, *args: Any) -> None: ...

    async def opaque_app() -> None:
        async with serve_app(Opaque()):
            pass

    with pytest.raises(TypeError, match="interface='asgi'"):
        run(opaque_app)


def test_asgi_app_with_lifespan() -> None:
    log: list[str] = []

    async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[1]
                log.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = f"{scope['scheme']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def body() -> None:
        async with serve_app(asgi_app) as server, server.client() as client:
            assert log == ["startup"]
            response = await client.get("/hello")
            assert (response.status, response.text) == (200, "https /hello")
        assert log == ["startup", "shutdown"]

    run(body)


def test_starlette_app() -> None:
    require_module("starlette")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def home(request: Any) -> Any:
        return JSONResponse({"scheme": request.url.scheme})

    app = Starlette(routes=[Route("/", home)])

    async def body() -> None:
        async with serve_app(app) as server, server.client() as client:
            assert (await client.get("/")).json() == {"scheme": "https"}

    run(body)


def test_fastapi_app_with_lifespan_and_a_failing_route() -> None:
    require_module("fastapi")
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        log.append("startup")
        yield
        log.append("shutdown")

    api = FastAPI(lifespan=lifespan)

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @api.get("/fail")
    async def fail() -> None:
        raise LookupError("fastapi handler broke")

    async def body() -> None:
        async with serve_app(api) as server, server.client() as client:
            assert log == ["startup"]
            assert (await client.get("/items/7")).json() == {"id": 7}
            assert (await client.get("/fail")).status == 500
            assert any(isinstance(e, LookupError) for e in server.exceptions)
        assert log == ["startup", "shutdown"]

    run(body)


def test_eventually_gives_up_with_a_timeout_error() -> None:
    async def body() -> None:
        await eventually(lambda: False, within=0.05)

    with pytest.raises(TimeoutError, match="still false after 0.05 s"):
        run(body)


# --- serve_app_in_thread -----------------------------------------------------------------------


def test_serve_app_in_thread_serves_curl_and_stops_its_thread() -> None:
    curl = require_tool("curl")
    log: list[str] = []
    threads = set(threading.enumerate())
    with serve_app_in_thread(make_app(log)) as server:
        assert log == ["startup"]
        result = subprocess.run(
            [curl, "--silent", "--show-error", "--max-time", "10", "--cacert", str(server.ca)]
            + [f"{server.url}/json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == '{"ok":true,"peer":null}'

        async def boom() -> int:
            async with server.client() as client:
                return (await client.get("/boom")).status

        assert run(boom) == 500
        assert [type(e) for e in server.exceptions] == [ValueError]
        port = server.port
    assert log == ["startup", "shutdown"]
    assert set(threading.enumerate()) == threads
    assert refuses(port)


def test_serve_app_in_thread_passes_errors_in_the_block_through() -> None:
    threads = set(threading.enumerate())
    with pytest.raises(KeyError), serve_app_in_thread(make_app()):
        raise KeyError("from the test")
    assert set(threading.enumerate()) == threads


def test_readme_serve_app_example_runs() -> None:
    repo = Path(__file__).resolve().parent.parent
    section = (repo / "README.md").read_text().split("## Testing your app", 1)[1]
    section = section.split("\n## ", 1)[0]
    block = section.split("Without pytest", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    paths = [str(repo), os.environ.get("PYTHONPATH", "")]
    result = subprocess.run(
        [sys.executable, "-c", block],
        cwd=repo / "examples" / "testing",
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200 {'id': 1, 'name': 'tea'}\n"
