"""ASGI applications served by this package's server, end to end over TLS with our client.

Starlette and FastAPI apps (real ones, not stand-ins) in-process and under ``framework
serve``; raw ASGI apps for streaming as sent, the client leaving, and misuse of the protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from framework import Client
from framework.asgi import ASGIHandler, as_handler, interface_of
from framework.errors import FrameworkError
from framework.server import Server
from framework.testing import LoopThread
from framework.tls import CertificateStore
from tests.conftest import TLSFiles, require_module, serve_in_thread
from tests.e2e.asgi_apps import native_app, raw_app, starlette_app
from tests.e2e.serve_cli import REPO, STARTUP_TIMEOUT, environment, serve_cli

TIMEOUT = 10.0


@contextmanager
def serving(app: Any, tls_files: TLSFiles, **options: Any) -> Iterator[Server]:
    handler = ASGIHandler(app, **options.pop("asgi", {}))
    with serve_in_thread(
        handler,
        tls_files,
        startup=[handler.startup],
        shutdown=[handler.shutdown],
        **options,
    ) as server:
        yield server


def run(
    server: Server, tls_files: TLSFiles, body: Callable[[Client], Awaitable[Any]], **kw: Any
) -> Any:
    async def main() -> Any:
        async with Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert, **kw) as c:
            return await asyncio.wait_for(body(c), TIMEOUT)

    return asyncio.run(main())


# --- detection ------------------------------------------------------------------------------


def test_asgi_interface_detection_prefers_native_for_app() -> None:
    async def native(request: Any) -> Any: ...

    async def three(scope: Any, receive: Any, send: Any) -> None: ...

    async def star(*args: Any) -> None: ...

    assert interface_of(native_app) == "native"  # an App is ASGI too, but served natively
    assert interface_of(native) == "native"
    assert interface_of(starlette_app) == "asgi"
    assert interface_of(raw_app) == "asgi"
    assert interface_of(three) == "asgi"
    assert interface_of(star) is None
    assert interface_of(print) is None
    assert as_handler(native_app) is native_app
    assert isinstance(as_handler(starlette_app), ASGIHandler)
    assert isinstance(as_handler(native_app, "asgi"), ASGIHandler)
    with pytest.raises(FrameworkError, match="--interface"):
        as_handler(star)


# --- Starlette in-process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette_server(tls_files: TLSFiles) -> Iterator[Server]:
    with serving(starlette_app, tls_files, client_cert="optional") as server:
        yield server


def test_asgi_starlette_json_stream_echo_state_background(
    starlette_server: Server, tls_files: TLSFiles
) -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)

    async def body(client: Client) -> None:
        response = await client.get("/json", params={"a": "1"})
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"id": 7, "name": "café", "query": {"a": "1"}}

        response = await client.get("/stream", params={"n": "50", "size": "1000"})
        assert response.headers["transfer-encoding"] == "chunked"
        text = (await response.aread()).decode()
        assert text.splitlines() == [f"{i}:" + "x" * 1000 for i in range(50)]

        response = await client.post("/echo", content=big, headers={"content-type": "x/y"})
        assert response.status == 200
        assert response.headers["content-type"] == "x/y"
        assert await response.aread() == big

        response = await client.get("/state")
        assert response.json() == {"greeting": "hello from lifespan", "started": True}

        response = await client.post("/background")
        assert (response.status, await response.aread()) == (202, b"accepted")
        response = await client.get("/background/done")
        assert await response.aread() == b"background task ran"

        response = await client.head("/json")
        assert response.status == 200
        assert response.headers["content-length"] == str(
            len(b'{"id":7,"name":"caf\xc3\xa9","query":{}}')
        )
        assert await response.aread() == b""

        response = await client.get("/status/404")
        assert (response.status, response.headers["x-custom"]) == (404, "yes")
        response = await client.get("/nowhere")
        assert response.status == 404

    run(starlette_server, tls_files, body)


def test_asgi_starlette_error_is_500_and_the_connection_serves_on(
    starlette_server: Server, tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(client: Client) -> None:
        response = await client.get("/error")
        assert (response.status, await response.aread()) == (500, b"Internal Server Error")
        response = await client.get("/json")
        assert response.status == 200

    with caplog.at_level(logging.ERROR, "framework.asgi"):
        run(starlette_server, tls_files, body)
    assert any("exception in ASGI app for GET /error" in r.getMessage() for r in caplog.records)


def test_asgi_scope_fields_and_tls_extension_with_a_client_certificate(
    starlette_server: Server, tls_files: TLSFiles
) -> None:
    async def body(client: Client) -> Any:
        response = await client.get("/scope/caf%C3%A9%20x", params={"q": "1"})
        return response.json()

    scope = run(
        starlette_server, tls_files, body, cert=tls_files.client_cert, key=tls_files.client_key
    )
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["http_version"], scope["method"], scope["scheme"]) == ("1.1", "GET", "https")
    assert scope["path"] == "/scope/café x"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x"
    assert (scope["query_string"], scope["root_path"]) == ("q=1", "")
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", starlette_server.port]
    assert ["host", f"localhost:{starlette_server.port}"] in scope["headers"]
    tls = scope["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02C, 0xC02F, 0xC030)
    assert tls["client_cert_name"] == "CN=test-client"
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----\n")
    assert tls["client_cert_error"] is None


def test_asgi_root_path_prefixes_path_and_raw_path(tls_files: TLSFiles) -> None:
    async def body(client: Client) -> Any:
        return (await client.get("/scope/a")).json()

    with serving(starlette_app, tls_files, asgi={"root_path": "/api"}) as server:
        scope = run(server, tls_files, body)
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/api",
        "/api/scope/a",
        "/api/scope/a",
    )
    assert scope["tls"]["client_cert_chain"] == []


def test_asgi_client_that_goes_away_reaches_the_app_as_disconnect(
    starlette_server: Server, tls_files: TLSFiles
) -> None:
    async def leave(client: Client) -> None:
        async with client.stream("GET", "/forever") as response:
            async for chunk in response.aiter_bytes():
                assert chunk.startswith(b"tick")
                break
        # Leaving the block early closes that connection: the app must notice and stop.

    async def check(client: Client) -> bytes:
        return (await client.get("/left")).content

    run(starlette_server, tls_files, leave)
    assert run(starlette_server, tls_files, check) == b"the app saw the client leave"


def test_asgi_work_after_the_response_leaves_the_connection_free(tls_files: TLSFiles) -> None:
    # As on uvicorn: once its response is out, an app that goes on working (Starlette's
    # background tasks) holds neither the client nor the connection's next request, which
    # here is what lets it finish.
    release = asyncio.Event()
    finished: list[str] = []
    peers: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        peers.append(scope["client"])
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        if scope["path"] == "/release":
            release.set()
        else:
            await asyncio.wait_for(release.wait(), TIMEOUT)
            finished.append(scope["path"])

    async def body(client: Client) -> list[str]:
        first = await client.get("/work-after")
        second = await client.get("/release")  # the same keep-alive connection
        assert (first.content, second.content) == (b"ok", b"ok")
        return finished

    with serving(app, tls_files) as server:
        run(server, tls_files, body)
    assert finished == ["/work-after"]
    assert peers[0] == peers[1]  # one connection carried both


# --- streaming as sent, and back pressure ---------------------------------------------------


def test_asgi_response_body_is_streamed_as_it_is_sent(tls_files: TLSFiles) -> None:
    release = threading.Event()
    sent_second = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        # The client must have the first piece while the app still holds the second.
        assert await asyncio.to_thread(release.wait, TIMEOUT), "the test never released"
        sent_second.set()
        await send({"type": "http.response.body", "body": b"second\n"})

    async def body(client: Client) -> list[bytes]:
        seen = []
        async with client.stream("GET", "/") as response:
            async for chunk in response.aiter_bytes():
                seen.append(chunk)
                if len(seen) == 1:
                    assert not sent_second.is_set()
                    release.set()
        return seen

    with serving(app, tls_files) as server:
        assert b"".join(run(server, tls_files, body)) == b"first\nsecond\n"


@pytest.mark.slow
def test_asgi_send_waits_while_the_client_does_not_read(tls_files: TLSFiles) -> None:
    # Back pressure: a client that reads nothing leaves the app waiting in send() once the
    # kernel's socket buffers (up to tcp_rmem + tcp_wmem on loopback), the transport's and the
    # adapter's allowance are full, short of the whole body. A send() not done within a second
    # counts as waiting; what is checked is how far the app got by then.
    kernel = sum(
        int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        for name in ("tcp_rmem", "tcp_wmem")
    )
    in_flight = kernel + 8 * 1024 * 1024
    progress: dict[str, int] = {"sent": 0}
    blocked = threading.Event()
    total = (in_flight + 16 * 1024 * 1024) // 65536

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        for _ in range(total):
            task = asyncio.ensure_future(
                send({"type": "http.response.body", "body": chunk, "more_body": True})
            )
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if not done:
                blocked.set()
                await task
            progress["sent"] += 1
        await send({"type": "http.response.body", "body": b""})

    async def body(client: Client) -> int:
        async with client.stream("GET", "/") as response:
            assert await asyncio.to_thread(blocked.wait, TIMEOUT)
            stalled_at = progress["sent"]
            async for _ in response.aiter_bytes():
                pass
        return stalled_at

    with serving(app, tls_files) as server:
        stalled_at = run(server, tls_files, body)
    assert stalled_at * 65536 < in_flight
    assert progress["sent"] == total


def test_asgi_stream_under_way_when_the_drain_begins_is_finished_first(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    # The graceful drain waits for an ASGI app's response in progress as for a native one:
    # the stream that was under way arrives whole, then the server stops within its timeout.
    server: Server | None = None
    drains: list[asyncio.Task[None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d\n" % i, "more_body": True})
            if i == 0:
                assert server is not None
                drains.append(asyncio.ensure_future(server.aclose(timeout=5)))
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"end\n"})

    async def body(client: Client) -> bytes:
        async with client.stream("GET", "/") as response:
            return await response.aread()

    handler = ASGIHandler(app)
    store = CertificateStore(tls_files.server_cert, tls_files.server_key)
    with (
        caplog.at_level(logging.WARNING, "framework"),
        LoopThread(asyncio.new_event_loop, name="test-server") as thread,
    ):
        server = Server(handler, host="127.0.0.1", port=0, ssl=store, shutdown=[handler.shutdown])
        thread.run(server.start(), timeout=30)
        assert run(server, tls_files, body) == b"0\n1\n2\n3\n4\nend\n"
        thread.run(server.serve_forever(), timeout=10)  # returns once the drain has ended
    assert len(drains) == 1
    assert drains[0].done()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- misuse of the protocol -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "line"),
    [
        ("/body-first", 500, "sent 'http.response.body' before 'http.response.start'"),
        ("/no-response", 500, "returned without sending a response"),
        ("/after-complete", 200, "sent 'http.response.body' after the response was complete"),
    ],
)
def test_asgi_misuse_is_one_log_line_and_the_connection_stays_usable(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture, path: str, status: int, line: str
) -> None:
    async def body(client: Client) -> None:
        response = await client.get(path)
        assert response.status == status
        await response.aread()
        response = await client.get("/")
        assert (response.status, await response.aread()) == (200, b"Hello, world!")
        assert len(server.connections) == 1  # both requests went over one connection

    with caplog.at_level(logging.INFO, "framework"), serving(raw_app, tls_files) as server:
        run(server, tls_files, body)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (
        [r.getMessage() for r in errors] == [f"ASGI app misuse in GET {path}: {line}"]
        if ("sent" in line)
        else [f"ASGI app {line} for GET {path}"]
    )
    assert all(r.exc_info is None for r in errors)


@pytest.mark.parametrize("path", ["/half", "/crash-mid-body"])
def test_asgi_app_ending_mid_body_cuts_that_connection_only(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    async def body(client: Client) -> None:
        async def fetch() -> bytes:
            return (await client.get(path)).content

        with pytest.raises(Exception, match="closed the connection"):
            await fetch()
        response = await client.get("/")
        assert (response.status, await response.aread()) == (200, b"Hello, world!")

    with caplog.at_level(logging.INFO, "framework"), serving(raw_app, tls_files) as server:
        run(server, tls_files, body)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"for GET {path}" in errors[0]


# --- FastAPI --------------------------------------------------------------------------------


def test_asgi_fastapi_pydantic_model_and_openapi(tls_files: TLSFiles) -> None:
    require_module("fastapi")
    from tests.e2e.asgi_fastapi import app as fastapi_app

    async def body(client: Client) -> None:
        response = await client.post("/items", json={"name": "pen", "price": 1.5, "tags": ["a"]})
        assert response.status == 200
        assert response.json() == {
            "item": {"name": "pen", "price": 1.5, "tags": ["a"]},
            "total": 3.0,
        }
        response = await client.post("/items", json={"name": "pen"})
        assert response.status == 422
        assert response.json()["detail"][0]["loc"] == ["body", "price"]
        response = await client.get("/items/42")
        assert response.json() == {"item_id": 42}
        response = await client.get("/openapi.json")
        spec = response.json()
        assert spec["info"]["title"] == "items"
        assert set(spec["paths"]) == {"/items", "/items/{item_id}"}
        assert "Item" in spec["components"]["schemas"]
        response = await client.get("/docs")
        assert response.status == 200
        assert b"swagger" in (await response.aread()).lower()

    with serving(fastapi_app, tls_files) as server:
        run(server, tls_files, body)


# --- Django ---------------------------------------------------------------------------------


def test_asgi_django_async_views(tls_files: TLSFiles) -> None:
    require_module("django")
    from tests.e2e.asgi_django import application as django_app

    async def body(client: Client) -> None:
        response = await client.get("/items/7")
        assert response.status == 200
        assert response.json() == {"item_id": 7, "secure": True}  # scheme https reached it
        payload = os.urandom(256 * 1024)
        response = await client.post("/echo", content=payload)
        assert response.content == payload
        async with client.stream("GET", "/stream") as streamed:
            assert streamed.headers["content-type"] == "application/x-ndjson"
            lines = (await streamed.aread()).splitlines()
        assert [json.loads(line) for line in lines] == [{"piece": i} for i in range(3)]
        assert (await client.get("/nowhere")).status == 404
        assert (await client.get("/fail")).status == 500
        assert (await client.get("/items/8")).status == 200  # and the server goes on

    with serving(django_app, tls_files) as server:
        run(server, tls_files, body)


# --- framework serve ------------------------------------------------------------------------


@pytest.mark.slow
def test_asgi_framework_serve_detects_starlette_runs_lifespan_and_drains(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    args = [
        "tests.e2e.asgi_apps:starlette_app",
        "--port",
        "0",
        "--certfile",
        str(tls_files.server_cert),
        "--keyfile",
        str(tls_files.server_key),
    ]
    env = environment(tmp_path / "home")
    with serve_cli(args, env=env, cwd=REPO) as running:
        served = re.compile(r"framework: serving on https://localhost:(\d+)/")
        port = int(running.wait_for(served, timeout=STARTUP_TIMEOUT).group(1))

        async def body() -> Any:
            url = f"https://localhost:{port}"
            async with Client(url, ca=tls_files.ca_cert) as client:
                state = (await client.get("/state")).json()
                scope = (await client.get("/scope/x")).json()
                return state, scope

        state, scope = asyncio.run(body())
        assert state == {"greeting": "hello from lifespan", "started": True}
        leaf = tls_files.server_cert.read_text().split("-----END CERTIFICATE-----")[0]
        assert scope["tls"]["server_cert"] == leaf + "-----END CERTIFICATE-----\n"
        running.wait_for(re.compile(r'"GET /scope/x HTTP/1.1" 200'))
        assert running.stop() == 0
        lines = running.rest()
    assert "asgi_apps: lifespan shutdown ran" in lines


@pytest.mark.slow
def test_asgi_framework_serve_startup_failure_is_one_line_and_exit_2(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    env = environment(tmp_path / "home")
    env["ASGI_APPS_FAIL_STARTUP"] = "1"
    args = ["tests.e2e.asgi_apps:starlette_app", "--port", "0"]
    with serve_cli(args, env=env, cwd=REPO) as running:
        status = running.process.wait(timeout=STARTUP_TIMEOUT)
        lines = running.rest()
    assert status == 2
    assert lines[-1] == (
        "framework: error: ASGI lifespan startup failed: "
        "RuntimeError: database unreachable at db.invalid:5432"
    )
    assert not any("Traceback" in line for line in lines)


@pytest.mark.slow
def test_asgi_framework_serve_interface_native_refuses_root_path(tmp_path: Path) -> None:
    env = environment(tmp_path / "home")
    args = ["tests.e2e.asgi_apps:native_app", "--root-path", "/api", "--port", "0"]
    with serve_cli(args, env=env, cwd=REPO) as running:
        status = running.process.wait(timeout=STARTUP_TIMEOUT)
        lines = running.rest()
    assert status == 2
    assert lines == [
        "framework: error: --root-path applies to ASGI apps; a native App has no use of it"
    ]
