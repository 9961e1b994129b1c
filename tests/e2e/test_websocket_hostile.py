"""Hostile WebSocket peers, over real TLS: each is bounded and closed with its code.

A frame header announcing 2^63 - 1 bytes (1009 before any payload), one with the reserved
top bit (1002), a flood of pings from a peer that does not read the pongs (reading pauses:
the server's buffer stays bounded, every ping is answered once the peer reads), a peer that
never reads what the handler sends (``send`` waits, memory bounded, then the keep-alive ping
times out: 1011). Meanwhile another client is served as usual.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.asyncio.client import connect

from framework import App, WebSocket, WebSocketDisconnect
from framework.limits import WRITE_HIGH_WATER
from framework.server import Server
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import raw_tls
from tests.e2e.test_websocket import _close_code, _frame, _raw_handshake

CHUNK = 64 * 1024


def make_app(seen: dict[str, Any]) -> App:
    app = App()

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    @app.websocket("/firehose", ping_interval=0.5, ping_timeout=1.0, close_timeout=1.0)
    async def firehose(ws: WebSocket) -> None:
        await ws.accept()
        seen["sent"] = 0
        payload = b"x" * CHUNK
        try:
            for _ in range(100_000):  # bounded: 6 GiB, far more than any buffer holds
                await ws.send(payload)
                seen["sent"] += 1
        except WebSocketDisconnect as exc:
            seen["code"] = exc.code

    return app


@contextmanager
def served(tls_files: TLSFiles) -> Iterator[tuple[Server, dict[str, Any]]]:
    seen: dict[str, Any] = {}
    with serve_in_thread(make_app(seen), tls_files, loop="uvloop") as server:
        yield server, seen


def upgraded_buffers(server: Server) -> list[int]:
    """The write buffer of each open WebSocket, read in the server's loop."""

    async def read() -> list[int]:
        context = server._context
        assert context is not None
        return [p.transport.get_write_buffer_size() for p in context.upgraded if p.transport]

    return asyncio.run_coroutine_threadsafe(read(), server.loop).result(5)


def echo_works(server: Server, tls_files: TLSFiles) -> float:
    """Seconds a ``websockets`` client takes for one echo on another connection."""

    async def main() -> float:
        started = time.monotonic()
        url = f"wss://localhost:{server.port}/echo"
        async with connect(url, ssl=tls_files.client_context()) as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"
        await ws.wait_closed()  # the TCP connection too, before this loop ends
        return time.monotonic() - started

    return asyncio.run(asyncio.wait_for(main(), 10))


def until(check: Any, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


@pytest.mark.parametrize(
    ("length", "code"), [(2**63 - 1, 1009), (2**63, 1002)], ids=["2^63-1", "msb-set"]
)
def test_frame_header_announcing_2_63_bytes_is_closed_at_once(
    tls_files: TLSFiles, length: int, code: int
) -> None:
    with served(tls_files) as (server, _):
        with raw_tls(server, tls_files) as sock:
            rest = _raw_handshake(sock, "/echo")
            header = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", length) + os.urandom(4)
            sock.sendall(header + b"abc")  # a few payload bytes, never the rest
            started = time.monotonic()
            assert _close_code(sock, rest) == code
            assert time.monotonic() - started < 2  # not a timeout: refused on the header
        assert echo_works(server, tls_files) < 5


def test_ping_flood_from_a_peer_that_does_not_read(tls_files: TLSFiles) -> None:
    ping = _frame(0x9, b"p" * 125)
    with served(tls_files) as (server, _):
        with raw_tls(server, tls_files, rcvbuf=16 * 1024, sndbuf=16 * 1024) as sock:
            _raw_handshake(sock, "/echo")
            sock.settimeout(1.0)
            sent, pending, stalled = 0, None, False
            # Kernel buffers on both sides (autotuned up to a few MiB) take tens of thousands
            # of pings before the server's own pause shows: bounded by count and time.
            deadline = time.monotonic() + 60
            while sent < 400_000 and time.monotonic() < deadline:
                try:
                    sock.sendall(ping)
                except (TimeoutError, ssl.SSLWantWriteError):
                    pending, stalled = ping, True  # the same bytes are retried below
                    break
                sent += 1
            assert stalled, f"the server read {sent} pings without the pongs being read"
            buffers = upgraded_buffers(server)
            assert buffers
            assert max(buffers) <= WRITE_HIGH_WATER + 64 * 1024, buffers
            assert echo_works(server, tls_files) < 5  # others unaffected
            # Now read: every ping is answered, nothing lost.
            sock.settimeout(10)
            reader = _Reader(sock)
            reader.start()
            if pending is not None:
                sock.sendall(pending)
                sent += 1
            sock.sendall(_frame(0x8, struct.pack("!H", 1000)))
            reader.join(20)
            assert reader.close_code == 1000
            assert reader.pongs == sent


class _Reader(threading.Thread):
    """Counts the pong frames on ``sock`` until the close frame."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.pongs = 0
        self.close_code: int | None = None

    def run(self) -> None:
        data = b""
        while self.close_code is None:
            while len(data) >= 2:
                length = data[1] & 0x7F
                if len(data) < 2 + length:
                    break
                opcode, payload = data[0] & 0x0F, data[2 : 2 + length]
                data = data[2 + length :]
                if opcode == 0xA:
                    self.pongs += 1
                elif opcode == 0x8:
                    self.close_code = struct.unpack("!H", payload[:2])[0]
                    return
            try:
                chunk = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not chunk:
                return
            data += chunk


def test_peer_that_never_reads_makes_send_wait_then_times_out(tls_files: TLSFiles) -> None:
    with served(tls_files) as (server, seen):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        with tls_files.client_context().wrap_socket(sock, server_hostname="localhost") as tls:
            _raw_handshake(tls, "/firehose")
            # send() waits: the count stops growing, far below what the loop would send.
            last = -1

            def settled() -> bool:
                nonlocal last
                now = seen.get("sent", 0)
                still, last = now == last, now
                return still and now > 0

            assert until(lambda: settled() and (time.sleep(0.3) or settled()), within=10)
            assert seen["sent"] * CHUNK < 16 * 1024 * 1024, seen["sent"]
            assert max(upgraded_buffers(server), default=0) <= WRITE_HIGH_WATER + 2 * CHUNK
            assert echo_works(server, tls_files) < 5
            # No pong comes back (nothing is read): the keep-alive closes with 1011, and
            # the connection is cut although its buffer never drains.
            assert until(lambda: "code" in seen, within=10)
            assert seen["code"] == 1011
            assert until(lambda: not upgraded_buffers(server), within=10)
