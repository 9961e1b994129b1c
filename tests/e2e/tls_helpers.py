"""Helpers for the TLS policy tests: a server on a given store or context, raw clients."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from framework.deploy import new_event_loop
from framework.messages import Request, Response
from framework.server import Handler, Server
from framework.tls import CertificateStore

TIMEOUT = 10.0


async def hello(request: Request) -> Response:
    return Response(b"hello")


@contextmanager
def serving(
    ssl_obj: CertificateStore | ssl.SSLContext | None,
    handler: Handler = hello,
    *,
    loop: str = "asyncio",
    **settings: Any,
) -> Iterator[Server]:
    """``handler`` served on 127.0.0.1, an ephemeral port, with ``ssl_obj``, in a thread."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        server = Server(handler, host="127.0.0.1", port=0, ssl=ssl_obj, **settings)
        stop = asyncio.Event()
        holder.update(server=server, loop=asyncio.get_running_loop(), stop=stop)
        try:
            await server.start()
        finally:
            ready.set()
        await stop.wait()
        await server.aclose(timeout=5)

    def run() -> None:
        try:
            factory = new_event_loop if loop == "uvloop" else asyncio.new_event_loop
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(main())
        except BaseException as exc:
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="tls-test-server", daemon=True)
    thread.start()
    assert ready.wait(30)
    if "error" in holder:
        raise holder["error"]
    try:
        yield holder["server"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        if "error" in holder:
            raise holder["error"]


@dataclass
class Fetched:
    """What one ``get`` saw."""

    data: bytes
    session: ssl.SSLSession | None
    session_reused: bool
    version: str | None


def get(
    port: int,
    context: ssl.SSLContext,
    *,
    session: ssl.SSLSession | None = None,
    host: str = "localhost",
) -> Fetched:
    """One ``GET /`` with ``Connection: close``: the whole answer and the TLS session."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        tls = context.wrap_socket(raw, server_hostname=host, session=session)
        with tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            for _ in range(1000):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            return Fetched(data, tls.session, tls.session_reused, tls.version())


def plain_exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload`` over plain TCP; everything read until the server closes (or 64 KiB)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        data = b""
        for _ in range(1000):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > 65536:
                break
        return data
