"""WebSocket routes over real TLS, with the ``websockets`` library as the peer.

The server runs in a thread (``serve_in_thread``); each test drives a ``websockets`` client
on its own loop. Raw frames (bad UTF-8, unmasked, oversized) go over a TLS socket by hand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from framework import App, Request, WebSocket, WebSocketDisconnect
from framework.server import Server
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import Responses, raw_tls


def make_app(seen: list[Any]) -> App:
    app = App()

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            seen.append(("closed", ws.close_code, ws.close_reason))

    @app.websocket("/rooms/{room}")
    async def room(ws: WebSocket, room: str) -> None:
        offered = ws.request.headers.get("sec-websocket-protocol")
        await ws.accept(subprotocol="chat.v1" if offered else None)
        data = await ws.receive_json()
        await ws.send_json({"room": room, "got": data, "tls": ws.request.tls is not None})

    @app.websocket("/closer")
    async def closer(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        await ws.close(4001, "done here")

    @app.websocket("/refuse")
    async def refuse(ws: WebSocket) -> None:
        return  # never accepted: 403

    @app.websocket("/boom")
    async def boom(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        raise KeyError("handler bug")

    @app.websocket("/small", max_message_size=1024)
    async def small(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send(await ws.receive())
        except WebSocketDisconnect as exc:
            seen.append(("small", exc.code))

    @app.websocket("/wait")
    async def wait(ws: WebSocket) -> None:
        await ws.accept()
        seen.append("waiting")
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            seen.append(("wait", exc.code))

    @app.get("/")
    async def hello(request: Request) -> str:
        return "Hello, world!"

    return app


@contextmanager
def served(tls_files: TLSFiles, loop_name: str = "uvloop") -> Iterator[tuple[Server, list[Any]]]:
    seen: list[Any] = []
    with serve_in_thread(make_app(seen), tls_files, loop=loop_name) as server:
        yield server, seen


def url(server: Server, path: str) -> str:
    return f"wss://localhost:{server.port}{path}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_websocket_echo_text_binary_and_fragments(tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> list[Any]:
        async with connect(url(server, "/echo"), ssl=tls_files.client_context()) as ws:
            got = []
            await ws.send("héllo")
            got.append(await ws.recv())
            await ws.send(b"\x00\x01binary")
            got.append(await ws.recv())
            await ws.send(["frag", "mented ", "text"])  # one message in three frames
            got.append(await ws.recv())
            big = os.urandom(600_000)  # under the 1 MiB default
            await ws.send(big)
            got.append(await ws.recv() == big)
            pong = await ws.ping(b"are you there")
            latency = await asyncio.wait_for(pong, 5)
            got.append(latency >= 0)
        return got

    with served(tls_files, loop_name) as (server, seen):
        got = run(main())
    assert got == ["héllo", b"\x00\x01binary", "fragmented text", True, True]
    assert seen == [("closed", 1000, "")]


def test_websocket_path_params_subprotocol_and_json(tls_files: TLSFiles) -> None:
    async def main() -> tuple[Any, Any]:
        async with connect(
            url(server, "/rooms/lobby"),
            ssl=tls_files.client_context(),
            subprotocols=["chat.v1"],  # type: ignore[list-item]
        ) as ws:
            await ws.send('{"n": 1}')
            return ws.subprotocol, await ws.recv()

    with served(tls_files) as (server, _):
        subprotocol, answer = run(main())
    assert subprotocol == "chat.v1"
    assert answer == '{"room":"lobby","got":{"n":1},"tls":true}'


def test_websocket_close_codes_both_ways(tls_files: TLSFiles) -> None:
    async def server_closes() -> tuple[int | None, str | None]:
        async with connect(url(server, "/closer"), ssl=tls_files.client_context()) as ws:
            await ws.send("bye")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    async def client_closes() -> None:
        async with connect(url(server, "/echo"), ssl=tls_files.client_context()) as ws:
            await ws.close(4002, "client leaving")

    with served(tls_files) as (server, seen):
        assert run(server_closes()) == (4001, "done here")
        run(client_closes())
        deadline = asyncio.run(_until(lambda: bool(seen)))
    assert deadline
    assert seen == [("closed", 4002, "client leaving")]


async def _until(check: Any, within: float = 5) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    # The state is the server thread's: there is no event of this loop to wait on.
    while not check() and loop.time() < end:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return bool(check())


def test_websocket_refused_before_accept_is_403_and_plain_get_is_426(tls_files: TLSFiles) -> None:
    async def main() -> int:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(server, "/refuse"), ssl=tls_files.client_context()):
                pass
        return info.value.response.status_code

    with served(tls_files) as (server, _):
        assert run(main()) == 403
        with raw_tls(server, tls_files) as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
            response, _ = Responses(sock).next("GET", "/echo")
            assert response.status_code == 426
            # And a bad handshake (no key) is 400, on the same server.
        with raw_tls(server, tls_files) as sock:
            sock.sendall(
                b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            response, _ = Responses(sock).next("GET", "/echo")
            assert response.status_code == 400


def test_websocket_handler_error_closes_1011_and_server_keeps_serving(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> int | None:
        async with connect(url(server, "/boom"), ssl=tls_files.client_context()) as ws:
            await ws.send("go")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    with caplog.at_level(logging.ERROR, "framework.websocket"), served(tls_files) as (server, _):
        assert run(main()) == 1011

        async def again() -> Any:
            async with connect(url(server, "/echo"), ssl=tls_files.client_context()) as ws:
                await ws.send("still here")
                return await ws.recv()

        assert run(again()) == "still here"
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_websocket_message_over_the_limit_closes_1009(tls_files: TLSFiles) -> None:
    async def main() -> tuple[Any, int | None]:
        async with connect(url(server, "/small"), ssl=tls_files.client_context()) as ws:
            await ws.send("x" * 1000)
            echoed = await ws.recv()
            await ws.send("y" * 2000)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return echoed, ws.close_code

    with served(tls_files) as (server, seen):
        echoed, code = run(main())
        assert asyncio.run(_until(lambda: bool(seen)))
    assert echoed == "x" * 1000
    assert code == 1009
    assert seen == [("small", 1009)]


# --- raw frames -------------------------------------------------------------------------------


def _frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv1: bool = False
) -> bytes:
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _raw_handshake(sock: ssl.SSLSocket, path: str, extra: str = "") -> bytes:
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    # RFC 6455 section 1.3's example key and answer.
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head.lower() or (
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    )
    return rest


def _close_code(sock: ssl.SSLSocket, rest: bytes) -> int:
    data = rest
    while len(data) < 4:
        try:
            chunk = sock.recv(4096)
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
    assert data[0] & 0x0F == 0x8, data  # a close frame
    return int(struct.unpack("!H", data[2:4])[0])


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(0x1, b"\xff\xfe not utf-8"), 1007),
        (_frame(0x1, b"unmasked", mask=False), 1002),
        (_frame(0x9, b"p" * 200), 1002),  # a control frame over 125 bytes
        (_frame(0x3, b"reserved opcode"), 1002),
    ],
    ids=["bad-utf8", "unmasked", "long-ping", "reserved-opcode"],
)
def test_websocket_protocol_errors_close_with_their_code(
    tls_files: TLSFiles, frame: bytes, code: int
) -> None:
    with served(tls_files) as (server, _):
        with raw_tls(server, tls_files) as sock:
            rest = _raw_handshake(sock, "/echo")
            sock.sendall(frame)
            assert _close_code(sock, rest) == code


def test_websocket_drain_sends_1001(tls_files: TLSFiles) -> None:
    async def main() -> int | None:
        async with connect(url(server, "/wait"), ssl=tls_files.client_context()) as ws:
            assert await _until(lambda: "waiting" in seen)
            stopping = asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(server.aclose(5), server.loop)
            )
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            await stopping
            return ws.close_code

    with served(tls_files) as (server, seen):
        assert run(main()) == 1001
    assert ("wait", 1001) in seen


def test_websocket_access_log_line(tls_files: TLSFiles, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with connect(url(server, "/echo"), ssl=tls_files.client_context()) as ws:
            await ws.send("abc")
            await ws.recv()

    with caplog.at_level(logging.INFO, "framework.access"), served(tls_files) as (server, seen):
        run(main())
        assert asyncio.run(
            _until(lambda: any("WEBSOCKET" in r.getMessage() for r in caplog.records))
        )
    (line,) = [r.getMessage() for r in caplog.records if "WEBSOCKET" in r.getMessage()]
    assert line.startswith('127.0.0.1 - "WEBSOCKET /echo" 1000 ')
    assert line.endswith("in 1/3B out 1/3B")


# --- the client's side ------------------------------------------------------------------------


def test_our_client_against_our_server(tls_files: TLSFiles, loop_name: str) -> None:
    from framework.websocket.client import connect as ws_connect

    async def main() -> list[Any]:
        got: list[Any] = []
        async with ws_connect(url(server, "/rooms/blue"), ca=tls_files.ca_cert) as ws:
            await ws.send_json({"hi": 1})
            got.append(await ws.receive_json())
        async with ws_connect(url(server, "/echo"), ca=tls_files.ca_cert) as ws:
            await ws.send_text("ping?")
            got.append(await ws.receive_text())
            await ws.send_bytes(b"\x01" * 200_000)
            got.append(len(await ws.receive_bytes()))
        return got

    with served(tls_files, loop_name) as (server, seen):
        got = run(main())
        assert asyncio.run(_until(lambda: len(seen) == 1))
    assert got == [{"room": "blue", "got": {"hi": 1}, "tls": True}, "ping?", 200_000]
    assert seen == [("closed", 1000, "")]


def test_our_client_against_the_websockets_server(tls_files: TLSFiles) -> None:
    from websockets.asyncio.server import serve as ws_serve

    from framework.errors import ConnectError
    from framework.websocket.client import connect as ws_connect

    async def echo(conn: Any) -> None:
        async for message in conn:
            await conn.send(message)
        # The close code our client sent reaches the peer.
        codes.append(conn.close_code)

    codes: list[Any] = []

    async def main() -> list[Any]:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(tls_files.server_cert, tls_files.server_key)
        got: list[Any] = []
        async with ws_serve(echo, "127.0.0.1", 0, ssl=server_ctx) as peer:
            port = peer.sockets[0].getsockname()[1]
            async with ws_connect(f"wss://localhost:{port}/", ca=tls_files.ca_cert) as ws:
                for message in ("text", b"bytes", "x" * 70_000):
                    await ws.send(message)
                    got.append(await ws.receive())
            # Verification is on: a client that does not trust the test CA is refused.
            with pytest.raises(ConnectError, match="certificate verify failed"):
                await ws_connect(f"wss://localhost:{port}/").open()
            await _until(lambda: bool(codes))
        return got

    assert run(main()) == ["text", b"bytes", "x" * 70_000]
    assert codes == [1000]


# --- permessage-deflate -----------------------------------------------------------------------


def test_websocket_compression_negotiated_with_narrow_windows(tls_files: TLSFiles) -> None:
    async def main() -> tuple[str, Any]:
        async with connect(url(server, "/echo"), ssl=tls_files.client_context()) as ws:
            text = "compressible " * 5000
            await ws.send(text)
            echoed = await ws.recv()
            assert ws.response is not None
            return ws.response.headers["Sec-WebSocket-Extensions"], echoed == text

    with served(tls_files) as (server, _):
        agreed, same = run(main())
    assert same
    assert agreed.startswith("permessage-deflate")
    assert "server_max_window_bits=12" in agreed
    assert "client_max_window_bits=12" in agreed


def test_websocket_decompression_bomb_closes_1009(tls_files: TLSFiles) -> None:
    # 8 MiB of zeros deflate to about 8 KiB: under the 1 KiB-limited route's frame limit
    # never, but inflated it is far over. The server must stop inflating at the limit.
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(b"\0" * (8 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692: the trailing 00 00 ff ff is left out
    with served(tls_files) as (server, seen):
        with raw_tls(server, tls_files) as sock:
            rest = _raw_handshake(
                sock, "/small", "Sec-WebSocket-Extensions: permessage-deflate\r\n"
            )
            sock.sendall(_frame(0x2, payload, rsv1=True))
            assert _close_code(sock, rest) == 1009
        assert asyncio.run(_until(lambda: bool(seen)))
    assert seen == [("small", 1009)]
