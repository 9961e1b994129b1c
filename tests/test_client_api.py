"""The client's everyday API against our own server over TLS: the response's shape, forms and
uploads, credentials, the cookie jar, retries, and the synchronous facade for scripts.

Proxies are in ``tests/test_client_proxy.py`` (against tinyproxy).
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import io
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

import framework
from framework import (
    App,
    BasicAuth,
    BearerAuth,
    Client,
    Request,
    Response,
    StreamingResponse,
    SyncClient,
)
from framework.client import PendingRequest
from framework.errors import (
    CertificateVerifyError,
    ConnectError,
    DecodingError,
    ServerDisconnectedError,
)
from framework.messages import RedirectResponse
from framework.server import Server
from framework.tls import CertificateStore
from tests.conftest import TLSFiles
from tests.test_client import raw_serving, run

app = App()


@app.route("/echo", methods=["GET", "POST", "PUT", "DELETE"])
async def echo(request: Request) -> Response:
    body = await request.body()
    info = {
        "method": request.method,
        "target": request.url,
        "headers": request.headers.items(),
        "body": body.decode("latin-1"),
    }
    return Response(json.dumps(info), media_type="application/json")


@app.get("/lines")
async def lines(request: Request) -> Response:
    # Line breaks of every kind, cut across the pieces the body is sent in; UTF-8 cut too.
    pieces = [b"one\r", b"\ntw", b"o\nth", b"r\xc3", b"\xa9e\r\r\nfour\n", b"", b"last"]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(0)

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8")


@app.get("/long-line")
async def long_line(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    return StreamingResponse(body())


@app.get("/latin1")
async def latin1(request: Request) -> Response:
    return Response("café".encode("latin-1"), media_type="text/plain; charset=iso-8859-1")


@app.get("/set-cookie")
async def set_cookie(request: Request) -> Response:
    cookies = [("set-cookie", value) for value in request.query.get_all("c")]
    then = request.query.get("then")
    if then:
        return RedirectResponse(then, status=302, headers=cookies)
    return Response("set", headers=cookies)


@app.post("/redirect-to")
async def redirect_to(request: Request) -> Response:
    await request.body()
    return RedirectResponse(request.query["url"], status=307)


@app.get("/who")
async def who(request: Request) -> dict[str, Any]:
    return {"cookie": request.headers.get("cookie"), "auth": request.headers.get("authorization")}


@app.get("/sub/who")
async def sub_who(request: Request) -> dict[str, Any]:
    return {"cookie": request.headers.get("cookie")}


@asynccontextmanager
async def serving(tls_files: TLSFiles, tls: bool = True, port: int = 0) -> AsyncIterator[Server]:
    store = CertificateStore(tls_files.server_cert, tls_files.server_key) if tls else None
    async with Server(app, host="127.0.0.1", port=port, ssl=store) as server:
        yield server


def client_for(tls_files: TLSFiles, server: Server, **options: Any) -> Client:
    return Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert, **options)


def multipart_parts(content_type: str, body: bytes) -> list[Any]:
    """The parts of a multipart/form-data body, read by the standard library's MIME parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart(), content_type
    return list(message.iter_parts())


# --- the response's shape -----------------------------------------------------------------------


def test_response_is_read_and_plain(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            response = await client.post("/echo?a=1", params={"b": "2"}, content=b"hi")
            assert type(response.content) is bytes
            assert isinstance(response.text, str)
            info = response.json()  # plain: no await
            assert info["target"] == "/echo?a=1&b=2"  # params join the URL's own query
            assert info["body"] == "hi"
            assert (response.status_code, response.is_success, response.is_error) == (
                200,
                True,
                False,
            )
            assert isinstance(response.elapsed, timedelta)
            assert timedelta(0) < response.elapsed < timedelta(seconds=30)
            sent = response.request
            assert (sent.method, sent.url) == ("POST", f"{client.base_url}/echo?a=1&b=2")
            assert sent.headers["content-length"] == "2"
            assert sent.content == b"hi"
            assert response.encoding == "utf-8"
            latin = await client.get("/latin1")
            assert (latin.encoding, latin.text) == ("iso-8859-1", "café")
            missing = await client.get("/nowhere")
            assert (missing.is_success, missing.is_error, missing.status_code) == (
                False,
                True,
                404,
            )

    run(main, loop_name)


def test_stream_iterates_text_and_lines(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            async with client.stream("GET", "/lines") as response:
                with pytest.raises(RuntimeError, match="aread"):
                    _ = response.content
                with pytest.raises(RuntimeError, match="elapsed"):
                    _ = response.elapsed
                got = [line async for line in response.aiter_lines()]
            # As str.splitlines() reads the whole text.
            assert got == "one\r\ntwo\nthrée\r\r\nfour\nlast".splitlines()
            assert got == ["one", "two", "thrée", "", "four", "last"]
            assert response.is_closed
            assert response.elapsed > timedelta(0)
            async with client.stream("GET", "/lines") as response:
                text = "".join([t async for t in response.aiter_text()])
            assert text == "one\r\ntwo\nthrée\r\r\nfour\nlast"
            async with client.stream("GET", "/lines") as response:
                assert await response.aread() == text.encode()
                assert response.text == text  # read: plain again
            # A line is bounded like a decoded body.
            async with Client(
                f"https://localhost:{server.port}", ca=tls_files.ca_cert, max_decoded_bytes=4096
            ) as small:
                async with small.stream("GET", "/long-line") as response:
                    with pytest.raises(DecodingError, match="line .* longer than 4096"):
                        async for _ in response.aiter_lines():
                            pass
                assert small.pool is not None
                assert small.pool.num_active == 0

    run(main, loop_name)


# --- forms and uploads ----------------------------------------------------------------------


def test_data_sends_a_urlencoded_form(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            form = {"name": "Zoë & co", "tag": ["a", "b"], "ok": True, "none": None}
            info = (await client.post("/echo", data=form)).json()
            headers = dict(info["headers"])
            assert headers["content-type"] == "application/x-www-form-urlencoded"
            assert parse_qsl(info["body"], keep_blank_values=True) == [
                ("name", "Zoë & co"),
                ("tag", "a"),
                ("tag", "b"),
                ("ok", "true"),
                ("none", ""),
            ]
            with pytest.raises(TypeError, match="content="):
                await client.post("/echo", data="raw text")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="not both"):
                await client.post("/echo", data={"a": "1"}, json={"a": 1})

    run(main)


def test_files_send_multipart_form_data(tls_files: TLSFiles, tmp_path: Any) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\r\n1,2\r\n")
    binary = bytes(range(256)) * 64

    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            with report.open("rb") as opened:
                response = await client.post(
                    "/echo",
                    data={"title": 'Q3 "final"', "n": 3},
                    files={
                        "report": opened,
                        "blob": ("blob.bin", binary, "application/x-thing"),
                        "note": ("note.txt", "héllo"),
                    },
                )
            info = response.json()
            content_type = dict(info["headers"])["content-type"]
            assert content_type.startswith("multipart/form-data; boundary=")
            parts = multipart_parts(content_type, info["body"].encode("latin-1"))
            got = {
                p.get_param("name", header="content-disposition"): (
                    p.get_filename(),
                    p.get_content_type(),
                    p.get_payload(decode=True),
                )
                for p in parts
            }
            assert got == {
                "title": (None, "text/plain", b'Q3 "final"'),
                "n": (None, "text/plain", b"3"),
                "report": ("report.csv", "text/csv", b"a,b\r\n1,2\r\n"),
                "blob": ("blob.bin", "application/x-thing", binary),
                "note": ("note.txt", "text/plain", "héllo".encode()),
            }
            # A form body is bytes: a 307 redirect sends it again.
            again = await client.post(
                "/redirect-to",
                params={"url": "/echo"},
                files={"f": io.BytesIO(b"data")},
                follow_redirects=True,
            )
            (part,) = multipart_parts(
                dict(again.json()["headers"])["content-type"],
                again.json()["body"].encode("latin-1"),
            )
            assert (len(again.history), part.get_payload(decode=True)) == (1, b"data")
            with pytest.raises(TypeError, match="binary mode"):
                await client.post("/echo", files={"f": io.StringIO("text")})  # type: ignore[dict-item]

    run(main)


# --- credentials ------------------------------------------------------------------------------


def test_auth_basic_bearer_and_callables(tls_files: TLSFiles) -> None:
    seen: list[str] = []

    async def token(request: PendingRequest) -> None:
        await asyncio.sleep(0)  # as a token refresh would
        seen.append(f"{request.method} {request.url}")
        request.headers["authorization"] = "Token from-callback"

    async def main() -> None:
        async with serving(tls_files) as server:
            async with client_for(tls_files, server, auth=("zoë", "p:ss")) as client:
                auth = (await client.get("/who")).json()["auth"]
                scheme, _, encoded = auth.partition(" ")
                assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", "zoë:p:ss")
                bearer = await client.get("/who", auth=BearerAuth("t0k3n"))
                assert bearer.json()["auth"] == "Bearer t0k3n"
                called = await client.get("/who", auth=token)
                assert called.json()["auth"] == "Token from-callback"
                assert seen == [f"GET https://localhost:{server.port}/who"]
                # An Authorization header given by the request wins over auth=.
                own = await client.get("/who", headers={"authorization": "Mine"})
                assert own.json()["auth"] == "Mine"
                # Credentials go to the first origin only, not through a redirect elsewhere.
                other = f"https://127.0.0.1:{server.port}/who"
                moved = await client.get(
                    "/set-cookie", params={"then": other}, follow_redirects=True
                )
                assert moved.url == other
                assert moved.json()["auth"] is None
            with pytest.raises(TypeError, match="auth must be"):
                Client(auth="user:pass")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="':'"):
                BasicAuth("a:b", "c")

    run(main)


# --- cookies ----------------------------------------------------------------------------------


def test_cookie_jar_follows_redirects_and_rules(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as server, client_for(tls_files, server) as client:
            base = f"https://localhost:{server.port}"
            # A cookie set by a redirect is sent to where it leads.
            response = await client.get(
                "/set-cookie",
                params=[("c", "session=abc; Path=/; HttpOnly"), ("then", "/who")],
                follow_redirects=True,
            )
            assert response.json()["cookie"] == "session=abc"
            assert client.cookies["session"] == "abc"
            assert response.history[0].cookies["session"] == "abc"
            assert "session" not in response.cookies  # set by the redirect, not this one
            # Path: a cookie for /sub is sent under /sub only.
            await client.get("/set-cookie", params={"c": "deep=1; Path=/sub"})
            assert (await client.get("/who")).json()["cookie"] == "session=abc"
            assert (await client.get("/sub/who")).json()["cookie"] == "deep=1; session=abc"
            # Host: cookies set by localhost do not go to 127.0.0.1 (another host).
            elsewhere = await client.get(f"https://127.0.0.1:{server.port}/who")
            assert elsewhere.json()["cookie"] is None
            # Max-Age=0 deletes; a request's own cookies join the jar's for that request.
            await client.get("/set-cookie", params={"c": "deep=; Path=/sub; Max-Age=0"})
            assert "deep" not in client.cookies
            own = await client.get("/who", cookies={"extra": "1", "session": "override"})
            assert own.json()["cookie"] == "extra=1; session=override"
            assert (await client.get(f"{base}/who")).json()["cookie"] == "session=abc"
            # A request's own cookies go with it alone, not along its redirects.
            moved = await client.get(
                "/set-cookie", params={"then": "/who"}, cookies={"once": "1"}, follow_redirects=True
            )
            assert moved.json()["cookie"] == "session=abc"
            assert "once=1" in moved.history[0].request.headers["cookie"]
            with pytest.raises(ValueError, match="Latin-1 only"):
                await client.get("/who", cookies={"name": "\u2603"})
            with pytest.raises(ValueError, match="invalid request header"):
                await client.get("/who", cookies={"name": "a\r\nX-Injected: 1"})

    run(main)


def pairs(cookie_header: str) -> set[str]:
    return {p.strip() for p in cookie_header.split(";")}


def test_secure_cookie_never_goes_over_http(tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with serving(tls_files) as https, serving(tls_files, tls=False) as http:
            async with Client(ca=tls_files.ca_cert, cookies={"plain": "p"}) as client:
                await client.get(
                    f"https://localhost:{https.port}/set-cookie",
                    params=[("c", "s=1; Secure; Path=/"), ("c", "n=2; Path=/")],
                )
                over_https = await client.get(f"https://localhost:{https.port}/who")
                assert pairs(over_https.json()["cookie"]) == {"n=2", "s=1", "plain=p"}
                over_http = await client.get(f"http://localhost:{http.port}/who")
                assert pairs(over_http.json()["cookie"]) == {"n=2", "plain=p"}
                client.cookies = {"fresh": "f"}  # a new jar
                assert pairs(
                    (await client.get(f"http://localhost:{http.port}/who")).json()["cookie"]
                ) == {"fresh=f"}
                client.cookies.clear()
                assert (await client.get(f"http://localhost:{http.port}/who")).json()[
                    "cookie"
                ] is None

    run(main)


# --- retries ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_retries_connect_failures_with_backoff(tls_files: TLSFiles) -> None:
    async def main() -> None:
        port = free_port()
        url = f"https://localhost:{port}/who"
        async with Client(ca=tls_files.ca_cert) as client:
            with pytest.raises(ConnectError, match="cannot connect"):
                await client.get(url)
        # The server comes up while the client backs off (0.1 s, 0.2 s, 0.4 s...).
        started = asyncio.Event()

        async def late_server() -> None:
            await asyncio.sleep(0.25)
            async with serving(tls_files, port=port):
                started.set()
                await done.wait()

        done = asyncio.Event()
        task = asyncio.create_task(late_server())
        try:
            async with Client(ca=tls_files.ca_cert, retries=6) as client:
                loop = asyncio.get_running_loop()
                begin = loop.time()
                response = await client.get(url)
                assert response.status == 200
                assert started.is_set()
                assert loop.time() - begin >= 0.25
        finally:
            done.set()
            await task

    run(main)


def test_retries_skip_certificate_failures(tls_files: TLSFiles, tmp_path: Any) -> None:
    from framework import pki

    pki.CertificateAuthority.create(tmp_path / "other", name="another CA")
    other_ca = tmp_path / "other" / "ca.pem"

    async def main() -> None:
        async with serving(tls_files) as server:
            async with Client(ca=other_ca, retries=5) as client:
                loop = asyncio.get_running_loop()
                begin = loop.time()
                with pytest.raises(CertificateVerifyError):
                    await client.get(f"https://localhost:{server.port}/who")
                assert loop.time() - begin < 0.1  # no back-off: it fails at once

    run(main)


def test_retries_replay_only_safe_requests(tls_files: TLSFiles) -> None:
    connections = 0

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The first connection of every two reads the request and closes unanswered.
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        if connections % 2 == 1:
            writer.transport.abort()
            return
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()

    async def main() -> None:
        nonlocal connections
        async with raw_serving(tls_files, flaky) as url:
            async with Client(ca=tls_files.ca_cert, retries=1) as client:
                assert (await client.get(url)).text == "ok"
                assert connections == 2
                connections = 0
                with pytest.raises(ServerDisconnectedError):
                    await client.post(url, content=b"pay")  # never replayed silently
                assert connections == 1
                connections = 0
                keyed = await client.post(url, content=b"pay", headers={"idempotency-key": "k1"})
                assert keyed.text == "ok"
                assert connections == 2
        with pytest.raises(ValueError, match="retries"):
            Client(retries=-1)

    run(main)


# --- the synchronous facade -------------------------------------------------------------------


@contextmanager
def server_thread(tls_files: TLSFiles) -> Iterator[int]:
    """Our server on its own loop in a thread (the caller's thread has no loop); its port."""
    ready = threading.Event()
    stop: list[Any] = []
    port: list[int] = []

    def main() -> None:
        async def serve() -> None:
            async with serving(tls_files) as server:
                port.append(server.port)
                done = asyncio.Event()
                stop.append((asyncio.get_running_loop(), done))
                ready.set()
                await done.wait()

        asyncio.run(serve())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    try:
        yield port[0]
    finally:
        loop, done = stop[0]
        loop.call_soon_threadsafe(done.set)
        thread.join(10)
        assert not thread.is_alive()


def test_sync_client_and_module_functions(tls_files: TLSFiles) -> None:
    with server_thread(tls_files) as port:
        base = f"https://localhost:{port}"
        response = framework.get(f"{base}/who", ca=tls_files.ca_cert, auth=("u", "p"))
        assert response.status_code == 200
        assert response.json()["auth"].startswith("Basic ")
        posted = framework.post(f"{base}/echo", ca=tls_files.ca_cert, json={"a": 1})
        assert json.loads(posted.json()["body"]) == {"a": 1}
        with SyncClient(base, ca=tls_files.ca_cert) as client:
            client.get("/set-cookie", params={"c": "k=v; Path=/"})
            assert client.get("/who").json()["cookie"] == "k=v"
            assert client.cookies["k"] == "v"
            # From other threads too: calls take turns on the private loop.
            results: list[int] = []
            threads = [
                threading.Thread(target=lambda: results.append(client.get("/who").status))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert results == [200] * 4
            assert client.client.pool is not None
            assert client.client.pool.num_connections == 1
        with pytest.raises(RuntimeError, match="closed"):
            client.get("/who")

        # A function called in a worker thread of async code works (no loop in that thread).
        async def from_async() -> int:
            return (
                await asyncio.to_thread(framework.get, f"{base}/who", ca=tls_files.ca_cert)
            ).status

        assert asyncio.run(from_async()) == 200


def test_sync_calls_refuse_a_running_loop(tls_files: TLSFiles) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="running an event loop.*to_thread"):
            framework.get("https://localhost:1/", ca=tls_files.ca_cert)
        client = SyncClient(ca=tls_files.ca_cert)
        with pytest.raises(RuntimeError, match=r"SyncClient.request\('GET'"):
            client.get("https://localhost:1/")
        with pytest.raises(RuntimeError, match="event loop"):
            client.close()

    asyncio.run(main())


def test_sync_errors_are_the_clients(tls_files: TLSFiles) -> None:
    with pytest.raises(ConnectError, match="cannot connect"):
        framework.get(f"https://localhost:{free_port()}/", ca=tls_files.ca_cert)
    with pytest.raises(ValueError, match="relative URL"):
        framework.get("/relative")


def test_forms_and_uploads_read_by_aiohttp(tls_files: TLSFiles, tmp_path: Any) -> None:
    """Another implementation parses what we send: aiohttp's server, over TLS."""
    from aiohttp import web  # in the test extra

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)

    async def upload(request: Any) -> Any:
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if isinstance(value, str):
                fields.setdefault(name, []).append(value)
            else:
                fields[name] = [value.filename, value.content_type, value.file.read().hex()]
        return web.json_response({"type": request.content_type, "fields": fields})

    async def main() -> None:
        aio = web.Application()
        aio.router.add_post("/upload", upload)
        runner = web.AppRunner(aio)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_files.server_cert, tls_files.server_key)
        site = web.SockSite(runner, sock, ssl_context=context)
        await site.start()
        url = f"https://localhost:{sock.getsockname()[1]}/upload"
        try:
            async with Client(ca=tls_files.ca_cert) as client:
                form = await client.post(url, data={"a": "1 & 2", "tag": ["x", "é"]})
                assert form.json() == {
                    "type": "application/x-www-form-urlencoded",
                    "fields": {"a": ["1 & 2"], "tag": ["x", "é"]},
                }
                with photo.open("rb") as opened:
                    sent = await client.post(
                        url,
                        data={"title": 'say "hi"'},
                        files=[
                            ("photo", opened),
                            ("notes", ("n\u00e9.txt", b"text", "text/plain")),
                        ],
                    )
                assert sent.json() == {
                    "type": "multipart/form-data",
                    "fields": {
                        "title": ['say "hi"'],
                        "photo": ["photo.png", "image/png", photo.read_bytes().hex()],
                        "notes": ["n\u00e9.txt", "text/plain", b"text".hex()],
                    },
                }
        finally:
            await runner.cleanup()

    run(main)
