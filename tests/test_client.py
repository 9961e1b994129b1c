"""``Client`` against our own server over TLS with the session CA, on asyncio and uvloop.

Each test runs a ``Server`` in the same event loop as the client, so nothing waits on threads;
servers written by others are in ``tests/e2e/test_client_nginx.py`` and
``tests/e2e/test_client_openssl.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import h11
import pytest

from framework import App, Request, Response, StreamingResponse
from framework.client import Client, ClientResponse, Timeout
from framework.client.pool import ConnectionPool
from framework.deploy import new_event_loop
from framework.errors import (
    CertificateVerifyError,
    ClientError,
    ConnectError,
    ConnectTimeout,
    DecodingError,
    HTTPStatusError,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    ServerDisconnectedError,
    TimeoutException,
    TLSError,
    TooManyRedirects,
    WriteTimeout,
)
from framework.messages import RedirectResponse
from framework.server import Server
from framework.tls import CertificateStore
from tests.conftest import TLSFiles

T = TypeVar("T")
MiB = 1024 * 1024


def run(main: Callable[[], Awaitable[T]], loop_name: str = "asyncio") -> T:
    """Run ``main()`` on a fresh loop of the given kind."""
    factory = new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())  # type: ignore[arg-type]


# --- the app under test -----------------------------------------------------------------------

app = App()
gates: dict[str, asyncio.Event] = {}


@app.get("/hello")
async def hello(request: Request) -> str:
    return "Hello, world!"


@app.get("/json")
async def data(request: Request) -> dict[str, Any]:
    return {"id": 7, "name": "seven", "query": request.query.items()}


@app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def echo(request: Request) -> Response:
    body = await request.body(max_size=16 * 1024 * 1024)  # uploads of several MiB
    info = {
        "method": request.method,
        "target": request.url,
        "length": len(body),
        "body": body.decode("latin-1") if len(body) < 1000 else None,
        "headers": request.headers.items(),
        "sni": request.tls.server_name if request.tls else None,
        "client_cn": request.tls.peer_common_name if request.tls else None,
    }
    return Response(json.dumps(info), media_type="application/json")


@app.get("/bytes/{size:int}")
async def fixed(request: Request, size: int) -> Response:
    return Response(b"x" * size, media_type="application/octet-stream")


@app.get("/chunked/{size:int}")
async def chunked(request: Request, size: int) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            n = min(left, 16 * 1024)
            yield b"y" * n
            left -= n

    return StreamingResponse(pieces())


@app.get("/gzip")
async def gzipped(request: Request) -> Response:
    body = gzip.compress(b"hello gzip " * 1000)
    return Response(body, headers={"content-encoding": "gzip"}, media_type="text/plain")


@app.get("/deflate")
async def deflated(request: Request) -> Response:
    body = zlib.compress(b"hello deflate " * 1000)
    return Response(body, headers={"content-encoding": "deflate"}, media_type="text/plain")


@app.get("/raw-deflate")
async def raw_deflated(request: Request) -> Response:
    packer = zlib.compressobj(wbits=-15)
    body = packer.compress(b"raw deflate " * 100) + packer.flush()
    return Response(body, headers={"content-encoding": "deflate"})


@app.get("/bomb")
async def bomb(request: Request) -> Response:
    # 8 MiB of zeros compress to ~8 KiB.
    return Response(gzip.compress(bytes(8 * MiB)), headers={"content-encoding": "gzip"})


@app.get("/corrupt-gzip")
async def corrupt(request: Request) -> Response:
    return Response(b"\x1f\x8b this is not gzip", headers={"content-encoding": "gzip"})


@app.get("/status/{code:int}")
async def status(request: Request, code: int) -> Response:
    return Response(f"status {code}", status=code)


@app.get("/redirect/{n:int}")
async def redirect_chain(request: Request, n: int) -> Response:
    return RedirectResponse(f"/redirect/{n - 1}" if n > 1 else "/echo", status=302)


@app.route("/redirect-to", methods=["GET", "POST"])
async def redirect_to(request: Request) -> Response:
    await request.body()
    code = int(request.query.get("status") or 302)
    return RedirectResponse(request.query["url"], status=code)


@app.get("/gate/{name}")
async def gate(request: Request, name: str) -> str:
    await gates.setdefault(name, asyncio.Event()).wait()
    return "released"


@app.get("/slow-stream")
async def slow_stream(request: Request) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()  # never: the client's read timeout ends it
        yield b"never"  # pragma: no cover

    return StreamingResponse(pieces())


@app.get("/random/{size:int}")
async def random_body(request: Request, size: int) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            n = min(left, random.randint(1, 4096))
            if random.random() < 0.3:
                await asyncio.sleep(0)
            yield b"r" * n
            left -= n

    return StreamingResponse(pieces())


@app.get("/keep-alive-hint")
async def keep_alive_hint(request: Request) -> Response:
    return Response("hint", headers={"keep-alive": "timeout=3, max=100"})


@app.get("/close")
async def close(request: Request) -> Response:
    return Response("bye", headers={"connection": "close"})


@asynccontextmanager
async def serving(
    tls_files: TLSFiles, client_cert: bool = False, **options: Any
) -> AsyncIterator[Server]:
    store = CertificateStore(
        tls_files.server_cert,
        tls_files.server_key,
        client_ca=tls_files.ca_cert if client_cert else None,
    )
    gates.clear()
    async with Server(app, host="127.0.0.1", port=0, ssl=store, **options) as server:
        yield server


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def raw_handler(handler: RawHandler) -> RawHandler:
    """A hand-written server's connection handler that always closes its connection."""

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    return wrapped


@asynccontextmanager
async def raw_serving(tls_files: TLSFiles, handler: RawHandler) -> AsyncIterator[str]:
    """A hand-written HTTPS server on loopback, for answers ours would never give; its URL.

    Handlers still running when the block ends are cancelled.
    """
    running: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        finally:
            running.discard(task)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
    server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=context)
    try:
        yield f"https://localhost:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        for task in running:
            task.cancel()
        await server.wait_closed()


def client_for(tls_files: TLSFiles, server: Server, **options: Any) -> Client:
    return Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert, **options)


async def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait, polling, until ``condition()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


def assert_pool_empty(pool: ConnectionPool | None) -> None:
    assert pool is not None
    assert (pool.num_active, pool.num_waiting) == (0, 0), pool
    assert pool.num_connections == pool.num_idle, pool


# --- basics -------------------------------------------------------------------------------------


def test_client_get_text_json_and_headers(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.get("/hello")
            assert response.status == 200
            assert response.reason == "OK"
            assert response.http_version == "1.1"
            assert response.url == f"https://localhost:{server.port}/hello"
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert response.text == "Hello, world!"
            assert response.content == b"Hello, world!"
            assert response.is_closed
            assert response.raise_for_status() is response
            response = await client.get("/json", params={"page": 2, "tag": ["a", "b"]})
            body = response.json()
            assert body["id"] == 7
            assert body["query"] == [["page", "2"], ["tag", "a"], ["tag", "b"]]
            assert repr(response) == "<ClientResponse [200 OK]>"

    run(main, loop_name)


def test_client_sends_default_and_custom_headers(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, headers={"X-Team": "blue"}) as client:
                info = (await client.get("/echo", headers={"X-Trace": "1"})).json()
                headers = dict(info["headers"])
                assert headers["host"] == f"localhost:{server.port}"
                assert headers["x-team"] == "blue"
                assert headers["x-trace"] == "1"
                assert headers["accept-encoding"] == "gzip, deflate"
                assert headers["user-agent"] == "framework"
                info = (await client.get("/echo", headers={"User-Agent": "me"})).json()
                assert dict(info["headers"])["user-agent"] == "me"

    run(main)


def test_client_methods_and_bodies(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            for method in ("post", "put", "patch"):
                info = (await getattr(client, method)("/echo", content=b"abc")).json()
                assert (info["method"], info["body"]) == (method.upper(), "abc")
                assert dict(info["headers"])["content-length"] == "3"
            info = (await client.post("/echo", json={"a": [1, 2]})).json()
            assert json.loads(info["body"]) == {"a": [1, 2]}
            assert dict(info["headers"])["content-type"] == "application/json"
            info = (await client.post("/echo")).json()
            assert dict(info["headers"])["content-length"] == "0"
            info = (await client.delete("/echo")).json()
            assert info["method"] == "DELETE"
            info = (await client.options("/echo")).json()
            assert info["method"] == "OPTIONS"
            response = await client.head("/hello")
            assert response.status == 200
            assert await response.aread() == b""
            assert response.headers["content-length"] == "13"
            info = (await client.request("get", "/echo?x=1", params={"y": "2"})).json()
            assert info["target"] == "/echo?x=1&y=2"

    run(main, loop_name)


def test_client_prepared_bodiless_requests_match_h11(tls_files: TLSFiles, loop_name: str) -> None:
    """Bodiless requests are written from bytes made once per URL and method; h11 still
    records each one, so HEAD, GET and a method switch on one connection frame correctly."""

    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            for _ in range(3):
                head = await client.head("/hello")
                assert (head.status, await head.aread()) == (200, b"")
                assert (await client.get("/hello")).content == b"Hello, world!"
                info = (await client.delete("/echo")).json()
                assert (info["method"], info["length"]) == ("DELETE", 0)
                assert "content-length" not in dict(info["headers"])
            pool = client.pool
            assert pool is not None
            assert pool.num_connections == 1
            target = client._targets["/hello"]
            assert set(target.bodiless) == {"HEAD", "GET"}
            for method, prepared in target.bodiless.items():
                fresh = h11.Connection(h11.CLIENT)
                request = h11.Request(method=method, target="/hello", headers=target.headers)
                assert prepared.prepared is not None
                data = prepared.prepared.data
                assert data == fresh.send(request) + fresh.send(h11.EndOfMessage())
                assert data.startswith(f"{method} /hello HTTP/1.1\r\n".encode())

    run(main, loop_name)


def test_client_streams_request_body_chunked(tls_files: TLSFiles, loop_name: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(100):
            yield bytes([65 + i % 26]) * 10_000

    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            info = (await client.post("/echo", content=body())).json()
            assert info["length"] == 1_000_000
            headers = dict(info["headers"])
            assert headers["transfer-encoding"] == "chunked"
            assert "content-length" not in headers
            # A large bytes body is one Content-Length body.
            info = (await client.put("/echo", content=b"z" * 3 * MiB)).json()
            assert info["length"] == 3 * MiB
            assert dict(info["headers"])["content-length"] == str(3 * MiB)

    run(main, loop_name)


def test_client_raise_for_status(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.get("/status/404")
            with pytest.raises(HTTPStatusError, match="404 Not Found") as info:
                response.raise_for_status()
            assert info.value.status == 404
            assert info.value.url.endswith("/status/404")
            with pytest.raises(HTTPStatusError, match="server error"):
                (await client.get("/status/503")).raise_for_status()

    run(main)


def test_client_misuse_raises_builtin_errors(tls_files: TLSFiles) -> None:
    with pytest.raises(ValueError, match="not both"):
        Client(ca=tls_files.ca_cert, ssl_context=ssl.create_default_context())
    with pytest.raises(ValueError, match="needs cert"):
        Client(key=tls_files.client_key)
    with pytest.raises(ValueError, match="at least 1"):
        Client(max_connections=0)
    with pytest.raises(ValueError, match="invalid client header"):
        Client(headers={"X-Bad": "a\r\nInjected: yes"})
    with pytest.raises(ValueError, match="timeout must be"):
        Client(timeout=-1)

    async def main() -> None:
        async with Client(ca=tls_files.ca_cert) as client:
            with pytest.raises(ValueError, match="base_url"):
                await client.get("/relative")
            with pytest.raises(ValueError, match="https://"):
                await client.get("ftp://localhost/")
            with pytest.raises(ValueError, match="credentials"):
                await client.get("https://user:pw@localhost/")
            with pytest.raises(ValueError, match="not both"):
                await client.post("https://localhost/", content=b"a", json={})
            with pytest.raises(TypeError, match="content must be"):
                await client.post("https://localhost/", content=42)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="invalid request header"):
                await client.get("https://localhost/", headers={"X": "a\nb"})
            assert_pool_empty(client.pool)

    run(main)


def test_client_repr_shows_state(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            client = client_for(tls_files, server)
            assert repr(client) == f"<Client [https://localhost:{server.port}, NEW]>"
            async with client:
                await client.get("/hello")
                await client.get("/hello")
                assert repr(client) == (
                    f"<Client [https://localhost:{server.port}, OPEN, connections: 1 "
                    "(0 active, 1 idle)]>"
                )
                assert repr(client.pool) == (
                    "<ConnectionPool [OPEN, connections: 1 (0 active, 1 idle), waiting: 0]>"
                )
                (conn,) = client.pool._connections  # type: ignore[union-attr]
                assert repr(conn) == (
                    f"<ClientConnection [https://localhost:{server.port}, IDLE, requests: 2]>"
                )
            assert "CLOSED" in repr(client)
            with pytest.raises(ClientError, match="closed"):
                await client.get("/hello")

    run(main)


# --- TLS ------------------------------------------------------------------------------------------


def test_client_tls_defaults(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.get("/echo")
            tls = response.tls
            assert tls is not None
            assert tls.version in ("TLSv1.2", "TLSv1.3")
            assert tls.alpn_protocol == "http/1.1"
            assert response.json()["sni"] == "localhost"
            context = client.ssl_context
            assert context is not None
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname
            assert context.minimum_version == ssl.TLSVersion.TLSv1_2
            assert context.verify_flags & ssl.VERIFY_X509_STRICT
            # An IP literal: certificate checked against its IP entry, and no SNI sent.
            info = (await client.get(f"https://127.0.0.1:{server.port}/echo")).json()
            assert info["sni"] is None

    run(main, loop_name)


def test_client_refuses_untrusted_server(tls_files: TLSFiles, tmp_path: Any) -> None:
    from framework import pki

    other = pki.CertificateAuthority.create(tmp_path / "other", name="other CA")

    async def main() -> None:
        async with serving(tls_files) as server:
            async with Client(ca=other.directory / "ca.pem") as client:
                with pytest.raises(CertificateVerifyError) as info:
                    await client.get(f"https://localhost:{server.port}/hello")
                assert info.value.host == "localhost"
                assert "issuer" in info.value.reason or "issuer" in info.value.hint
                assert "ca=" in info.value.hint
                assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
                assert_pool_empty(client.pool)
                assert client.pool.num_connections == 0  # type: ignore[union-attr]

    run(main)


def test_client_resolve_pins_name_and_checks_certificate(
    tls_files: TLSFiles, loop_name: str
) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            # The certificate names localhost: pinning localhost to 127.0.0.1 works...
            async with Client(ca=tls_files.ca_cert, resolve={"localhost": "127.0.0.1"}) as client:
                info = (await client.get(f"https://localhost:{server.port}/echo")).json()
                assert info["sni"] == "localhost"
            # ...and pinning a name the certificate lacks fails on the name, with the names
            # the certificate does have in the hint.
            pins = {f"other.test:{server.port}": "127.0.0.1"}
            async with Client(ca=tls_files.ca_cert, resolve=pins) as client:
                with pytest.raises(CertificateVerifyError) as info:
                    await client.get(f"https://other.test:{server.port}/hello")
                error = info.value
                assert error.host == "other.test"
                assert "localhost" in error.hint
                assert "not other.test" in error.hint
                assert "mismatch" in error.reason.lower()

    run(main, loop_name)


def test_client_mutual_tls(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files, client_cert=True) as server:
            async with client_for(
                tls_files, server, cert=tls_files.client_cert, key=tls_files.client_key
            ) as client:
                info = (await client.get("/echo")).json()
                assert info["client_cn"] == "test-client"
            async with client_for(tls_files, server) as client:
                # TLS 1.3 finishes the client's handshake before the server checks; the
                # refusal comes as the connection closing on the first request.
                with pytest.raises(ServerDisconnectedError, match="client certificate"):
                    await client.get("/echo")
                assert_pool_empty(client.pool)

    run(main)


def test_client_own_ssl_context_is_not_modified(tls_files: TLSFiles) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    context.set_alpn_protocols(["http/1.1"])
    before = (context.verify_mode, context.check_hostname, context.verify_flags, context.options)

    async def main() -> None:
        async with serving(tls_files) as server:
            async with Client(ssl_context=context) as client:
                response = await client.get(f"https://localhost:{server.port}/hello")
                assert response.status == 200
                assert client.ssl_context is context
        after = (context.verify_mode, context.check_hostname, context.verify_flags, context.options)
        assert after == before

    run(main)


def test_client_system_trust_store_built_once(tls_files: TLSFiles) -> None:
    from framework import client as client_module

    async def main() -> None:
        async with Client() as first, Client() as second:
            assert first.ssl_context is second.ssl_context
            assert first.ssl_context is client_module.system_context()
            async with serving(tls_files) as server:
                # The test CA is not in the system store.
                with pytest.raises(CertificateVerifyError):
                    await first.get(f"https://localhost:{server.port}/hello")

    run(main)


def test_client_connect_errors_are_translated() -> None:
    async def main() -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, not listening: refused
            async with Client(timeout=2) as client:
                with pytest.raises(ConnectError, match="cannot connect") as info:
                    await client.get(f"https://127.0.0.1:{port}/")
                assert isinstance(info.value.__cause__, OSError)
                assert_pool_empty(client.pool)
                with pytest.raises(ConnectError):
                    await client.get("https://name.invalid/")

    run(main)


def test_client_connect_timeout() -> None:
    async def main() -> None:
        # A listener that never accepts: the TCP connection completes, the TLS handshake
        # never does.
        @raw_handler
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with Client(timeout=Timeout(connect=0.2)) as client:
                with pytest.raises(ConnectTimeout) as info:
                    await client.get(f"https://127.0.0.1:{port}/")
                assert isinstance(info.value, TimeoutError)
                assert_pool_empty(client.pool)
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_client_plain_http_is_not_tls(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with Server(app, host="127.0.0.1", port=0) as server:
            async with Client(ca=tls_files.ca_cert) as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/hello")
                assert response.text == "Hello, world!"
                assert response.tls is None
                with pytest.raises(TLSError, match="does not speak TLS"):
                    await client.get(f"https://127.0.0.1:{server.port}/hello")

    run(main)


# --- connections and the pool -------------------------------------------------------------------


def test_client_reuses_most_recent_idle_connection(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            for _ in range(5):
                await client.get("/hello")
            pool = client.pool
            assert pool is not None
            assert pool.num_connections == 1
            # Two at once open a second connection; afterwards the one used last goes first.
            gates["a"] = asyncio.Event()
            first = asyncio.create_task(client.get("/gate/a"))
            second = asyncio.create_task(client.get("/hello"))
            await second
            assert pool.num_connections == 2
            gates["a"].set()
            await first
            (idle,) = pool._idle.values()
            older, last = idle  # `first` finished last, so its connection is on top
            counts = (older.requests, last.requests)
            await client.get("/hello")
            assert (older.requests, last.requests) == (counts[0], counts[1] + 1)
            assert_pool_empty(pool)

    run(main, loop_name)


def test_client_pool_bounds_and_pool_timeout(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(
                tls_files, server, max_connections=2, timeout=Timeout(pool=0.2)
            ) as client:
                gates["g"] = asyncio.Event()
                busy = [asyncio.create_task(client.get("/gate/g")) for _ in range(2)]
                await eventually(lambda: client.pool is not None and client.pool.num_active == 2)
                with pytest.raises(PoolTimeout, match="became free") as info:
                    await client.get("/hello")
                assert isinstance(info.value, TimeoutError)
                # A waiter gets a connection as soon as one is released.
                waiting = asyncio.create_task(client.get("/hello", timeout=Timeout(pool=5)))
                await eventually(lambda: client.pool.num_waiting == 1)  # type: ignore[union-attr]
                gates["g"].set()
                assert (await waiting).status == 200
                await asyncio.gather(*busy)
                assert client.pool.num_connections == 2
                assert_pool_empty(client.pool)

    run(main)


def test_client_per_host_bound(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(
                tls_files, server, max_connections_per_host=1, max_connections=10
            ) as client:
                results = await asyncio.gather(*(client.get("/hello") for _ in range(20)))
                assert all(r.status == 200 for r in results)
                assert client.pool.num_connections == 1  # type: ignore[union-attr]
                # Another origin (same server, by IP) has its own allowance.
                await client.get(f"https://127.0.0.1:{server.port}/hello")
                assert client.pool.num_connections == 2  # type: ignore[union-attr]

    run(main)


def test_client_full_pool_evicts_idle_connection_of_other_origin(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, max_connections=1) as client:
                await client.get("/hello")
                await client.get(f"https://127.0.0.1:{server.port}/hello")
                assert client.pool.num_connections == 1  # type: ignore[union-attr]
                assert_pool_empty(client.pool)

    run(main)


def test_client_notices_server_closing_idle_connection(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            await client.get("/hello")
            pool = client.pool
            assert pool is not None
            assert pool.num_idle == 1
            for conn in list(server.connections):
                conn.shutdown()  # the server closes its idle connections
            for _ in range(200):  # bounded: the EOF arrives within a few loop turns
                if pool.num_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert pool.num_connections == 0
            assert pool.num_idle == 0
            assert (await client.get("/hello")).status == 200

    run(main)


def test_client_connection_close_is_not_reused(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            assert (await client.get("/close")).text == "bye"
            assert client.pool.num_connections == 0  # type: ignore[union-attr]
            assert (await client.get("/hello")).status == 200

    run(main)


def test_client_keep_alive_hint_shortens_expiry(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            await client.get("/keep-alive-hint")
            (conn,) = client.pool._connections  # type: ignore[union-attr]
            assert conn.keep_alive_expiry == 2.0  # 3 s hint less the 1 s margin
            assert conn.expires_at - conn.idle_since == pytest.approx(2.0)

    run(main)


def test_client_expired_idle_connection_is_not_used(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, keep_alive_expiry=0.0) as client:
                await client.get("/hello")
                first = next(iter(client.pool._connections))  # type: ignore[union-attr]
                await client.get("/hello")
                assert first not in client.pool._connections  # type: ignore[union-attr]
                assert first.requests == 1

    run(main)


def test_client_replays_idempotent_request_on_dead_reused_connection(
    tls_files: TLSFiles, loop_name: str
) -> None:
    """A server that closes a kept-alive connection as the next request arrives."""

    async def main() -> None:
        served: list[int] = []

        @raw_handler
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            served.append(1)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request: drop it, close

        async with raw_serving(tls_files, handle) as url:
            async with Client(ca=tls_files.ca_cert) as client:
                assert (await client.get(url)).text == "ok"
                # The reused connection dies before any response byte: replayed once, quietly.
                assert (await client.get(url)).text == "ok"
                assert len(served) == 2
                assert client.pool.num_connections == 1  # type: ignore[union-attr]
                # A POST is not replayed: the server may have acted on it.
                with pytest.raises(ServerDisconnectedError, match="without sending a response"):
                    await client.post(url, content=b"once")
                # Nor a request whose body was a spent iterator (on its first use it goes
                # through: the connection is new).
                assert_pool_empty(client.pool)

    run(main, loop_name)


# --- streaming, timeouts, cancellation ---------------------------------------------------------


def test_client_streams_response_with_read_backpressure(
    tls_files: TLSFiles, loop_name: str
) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            async with client.stream("GET", "/chunked/8388608") as response:
                assert response.status == 200
                assert response.headers["transfer-encoding"] == "chunked"
                chunks = response.aiter_bytes()
                first = await chunks.__anext__()  # type: ignore[attr-defined]
                conn = response._conn
                assert conn is not None
                for _ in range(200):  # let the server fill what the client will take
                    if conn.flow is not None and conn.flow.is_read_paused:
                        break
                    await asyncio.sleep(0.005)
                assert conn.flow is not None
                assert conn.flow.is_read_paused
                # Bounded: the high-water mark plus what one read can bring.
                assert conn.buffered_bytes < 64 * 1024 + 512 * 1024
                total = len(first)
                async for chunk in chunks:  # type: ignore[attr-defined]
                    total += len(chunk)
                assert total == 8 * MiB
            assert response.is_closed
            assert client.pool.num_idle == 1  # type: ignore[union-attr]

    run(main, loop_name)


def test_client_stream_left_early_closes_the_connection(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            async with client.stream("GET", "/chunked/4194304") as response:
                async for _chunk in response.aiter_bytes():
                    break
            assert client.pool.num_connections == 0  # type: ignore[union-attr]
            async with client.stream("GET", "/hello") as response:
                pass  # a small body arrived whole: the connection is reusable
            assert client.pool.num_idle == 1  # type: ignore[union-attr]
            async with client.stream("GET", "/hello") as response:
                assert await response.aread() == b"Hello, world!"
                assert [c async for c in response.aiter_bytes()] == [b"Hello, world!"]

    run(main)


def test_client_large_downloads(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            assert len((await client.get("/bytes/5242880")).content) == 5 * MiB
            assert len((await client.get("/chunked/5242880")).content) == 5 * MiB
            assert client.pool.num_connections == 1  # type: ignore[union-attr]

    run(main, loop_name)


def test_client_read_timeout(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            with pytest.raises(ReadTimeout, match="sent nothing") as info:
                await client.get("/gate/never", timeout=Timeout(read=0.1))
            assert isinstance(info.value, TimeoutError)
            with pytest.raises(ReadTimeout):
                await client.get("/slow-stream", timeout=Timeout(read=0.1))
            assert_pool_empty(client.pool)
            assert client.pool.num_connections == 0  # type: ignore[union-attr]
            with pytest.raises(TimeoutException, match="total deadline"):
                await client.get("/gate/never", timeout=Timeout(total=0.1))
            assert (await client.get("/hello")).status == 200

    run(main)


@pytest.mark.slow
def test_client_cancellation_at_random_points_leaks_nothing(
    tls_files: TLSFiles, loop_name: str
) -> None:
    """Thousands of requests cancelled anywhere: pool wait, connect, write, head, body."""

    async def main() -> None:
        rng = random.Random(4)
        async with serving(tls_files) as server:
            async with client_for(
                tls_files, server, max_connections=8, timeout=Timeout(pool=30)
            ) as client:

                async def one(i: int) -> None:
                    if i % 3 == 0:
                        async with client.stream("GET", f"/random/{rng.randint(0, 200_000)}") as r:
                            async for _ in r.aiter_bytes():
                                pass
                    elif i % 3 == 1:
                        await client.post("/echo", content=b"p" * rng.randint(0, 100_000))
                    else:
                        await client.get(f"/random/{rng.randint(0, 50_000)}")

                cancelled = done = 0
                for batch in range(25):
                    tasks = [asyncio.create_task(one(batch * 100 + i)) for i in range(100)]
                    loop = asyncio.get_running_loop()
                    for task in tasks:
                        if rng.random() < 0.6:
                            loop.call_later(rng.uniform(0, 0.04), task.cancel)
                    for result in await asyncio.gather(*tasks, return_exceptions=True):
                        if isinstance(result, asyncio.CancelledError):
                            cancelled += 1
                        elif isinstance(result, BaseException):
                            raise result
                        else:
                            done += 1
                pool = client.pool
                assert pool is not None
                assert cancelled > 100, (cancelled, done)
                assert done > 100, (cancelled, done)
                assert_pool_empty(pool)
                assert pool.num_connections <= 8
                # And the pool still works.
                assert (await client.get("/hello")).status == 200
            assert pool.num_connections == 0
            assert pool.num_idle == 0

    run(main, loop_name)


def test_client_wait_for_timeout_inside_request(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, max_connections=1) as client:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(client.get("/gate/x"), 0.1)
                assert_pool_empty(client.pool)
                assert (await asyncio.wait_for(client.get("/hello"), 5)).status == 200

    run(main)


# --- redirects ------------------------------------------------------------------------------------


def test_client_redirects_off_by_default(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.get("/redirect/2")
            assert response.status == 302
            assert response.headers["location"] == "/redirect/1"
            assert_pool_empty(client.pool)

    run(main)


def test_client_follows_redirects_when_asked(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, follow_redirects=True) as client:
                response = await client.get("/redirect/3")
                assert response.status == 200
                assert response.url.endswith("/echo")
                assert [r.status for r in response.history] == [302, 302, 302]
                # 303 (and 302 after POST) turn into GET without the body; 307 keeps both.
                url = "/redirect-to?url=/echo&status=303"
                info = (await client.post(url, content=b"data")).json()
                assert (info["method"], info["length"]) == ("GET", 0)
                url = "/redirect-to?url=/echo&status=307"
                info = (await client.post(url, content=b"data")).json()
                assert (info["method"], info["body"]) == ("POST", "data")
                response = await client.get("/redirect/3", follow_redirects=False)
                assert response.status == 302
                assert client.pool.num_connections == 1  # type: ignore[union-attr]

    run(main)


def test_client_redirect_limits(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(
                tls_files, server, follow_redirects=True, max_redirects=2
            ) as client:
                with pytest.raises(TooManyRedirects, match="more than 2"):
                    await client.get("/redirect/5")
                assert_pool_empty(client.pool)
                # https -> http is refused unless asked.
                with pytest.raises(ClientError, match="https to http"):
                    await client.get("/redirect-to", params={"url": "http://localhost:1/"})

    run(main)


def test_client_redirect_drops_credentials_across_origins(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, follow_redirects=True) as client:
                secret = {"Authorization": "Bearer s3cret", "Cookie": "a=1", "X-Keep": "yes"}
                same = f"/redirect-to?url=https://localhost:{server.port}/echo"
                info = (await client.get(same, headers=secret)).json()
                assert {"authorization", "cookie"} <= set(dict(info["headers"]))
                other = f"https://127.0.0.1:{server.port}/echo"
                info = (
                    await client.get("/redirect-to", params={"url": other}, headers=secret)
                ).json()
                headers = dict(info["headers"])
                assert "authorization" not in headers
                assert "cookie" not in headers
                assert headers["x-keep"] == "yes"
                assert headers["host"] == f"127.0.0.1:{server.port}"
            # The client's own credentials too.
            async with client_for(
                tls_files, server, follow_redirects=True, headers={"Authorization": "Bearer c"}
            ) as client:
                other = f"https://127.0.0.1:{server.port}/echo"
                info = (await client.get("/redirect-to", params={"url": other})).json()
                assert "authorization" not in dict(info["headers"])
                info = (await client.get("/echo")).json()
                assert dict(info["headers"])["authorization"] == "Bearer c"

    run(main)


# --- decoding -------------------------------------------------------------------------------------


def test_client_decodes_gzip_and_deflate(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            assert (await client.get("/gzip")).content == b"hello gzip " * 1000
            assert (await client.get("/deflate")).content == b"hello deflate " * 1000
            assert (await client.get("/raw-deflate")).content == b"raw deflate " * 100
            async with client.stream("GET", "/gzip") as response:
                raw = b"".join([c async for c in response.aiter_raw()])
                assert gzip.decompress(raw) == b"hello gzip " * 1000
            with pytest.raises(DecodingError, match="corrupt"):
                await client.get("/corrupt-gzip")
            assert_pool_empty(client.pool)

    run(main)


def test_client_refuses_decompression_bomb(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, max_decoded_bytes=MiB) as client:
                with pytest.raises(DecodingError, match="larger than 1048576 bytes"):
                    await client.get("/bomb")
                assert_pool_empty(client.pool)
            async with client_for(tls_files, server) as client:
                assert len((await client.get("/bomb")).content) == 8 * MiB

    run(main)


# --- errors ---------------------------------------------------------------------------------------


def test_client_server_disconnect_mid_body(tls_files: TLSFiles) -> None:
    async def main() -> None:
        @raw_handler
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
            await writer.drain()

        async with raw_serving(tls_files, handle) as url:
            async with Client(ca=tls_files.ca_cert) as client:
                with pytest.raises(ServerDisconnectedError, match="before the response was"):
                    await client.get(url)
                assert_pool_empty(client.pool)

    run(main)


def test_client_malformed_response_is_read_error(tls_files: TLSFiles) -> None:
    async def main() -> None:
        @raw_handler
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 banana\r\n\r\n")
            await writer.drain()
            await reader.read()

        async with raw_serving(tls_files, handle) as url:
            async with Client(ca=tls_files.ca_cert) as client:
                with pytest.raises(ReadError, match="malformed") as info:
                    await client.get(url)
                from framework.errors import RemoteProtocolError

                assert isinstance(info.value.__cause__, RemoteProtocolError)
                assert_pool_empty(client.pool)

    run(main)


def test_client_response_helpers_after_read(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.get("/hello")
            with pytest.raises(DecodingError, match="not JSON"):
                response.json()
            assert response.text == "Hello, world!"
            async with client.stream("GET", "/hello") as streamed:
                with pytest.raises(RuntimeError, match="has not been read"):
                    _ = streamed.content
                async for _ in streamed.aiter_bytes():
                    pass
                with pytest.raises(RuntimeError, match="only once"):
                    async for _ in streamed.aiter_bytes():
                        pass
                assert isinstance(streamed, ClientResponse)

    run(main)


def test_client_write_timeout(tls_files: TLSFiles) -> None:
    async def main() -> None:
        @raw_handler
        async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.Event().wait()  # never reads the body

        async with raw_serving(tls_files, stalled) as url:
            async with Client(ca=tls_files.ca_cert, timeout=Timeout(write=0.2, read=5)) as client:
                with pytest.raises(WriteTimeout, match="accepted no request bytes") as info:
                    await client.put(url, content=bytes(32 * MiB))
                assert isinstance(info.value, TimeoutError)
                assert_pool_empty(client.pool)

    run(main)


def test_client_timeout_forms() -> None:
    assert Timeout.of(2) == Timeout(2, 2, 2, 2)
    assert Timeout.of(None) == Timeout(None, None, None, None, None)
    custom = Timeout(connect=1)
    assert Timeout.of(custom) is custom
    assert custom.read == 30.0
    with pytest.raises(ValueError, match="timeout must be"):
        Timeout.of("5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be"):
        Timeout.of(True)


def test_client_urls_and_params() -> None:
    from framework.client.request import split_url

    target = split_url("https://Example.TEST/a b/%7E?q=1 2#frag")
    assert target.origin == ("https", "example.test", 443)
    assert target.target == b"/a%20b/%7E?q=1%202"
    assert target.host_header == b"example.test"
    target = split_url("https://[::1]:8443")
    assert target.origin == ("https", "::1", 8443)
    assert (target.target, target.host_header) == (b"/", b"[::1]:8443")
    assert str(target.origin) == "https://[::1]:8443"
    assert split_url("https://bücher.test/").origin.host == "xn--bcher-kva.test"
    with pytest.raises(ValueError, match="invalid URL"):
        split_url("https://localhost:99999/")
    with pytest.raises(ValueError, match="no host"):
        split_url("https:///path")
