"""``Client.websocket``: a WebSocket on the client's TLS policy, against our server over TLS.

The client's CA verifies the server (a client without it is refused with a clear error), its
certificate reaches a route under mutual TLS (``ws.request.tls``), a relative URL joins
``base_url`` with ``https`` turned to ``wss``. A certificate reload leaves an open WebSocket
as it was while new handshakes see the new certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from framework import App, Client, WebSocket
from framework.errors import ConnectError, RemoteProtocolError
from tests.conftest import TLSFiles, serve_in_thread


def make_app() -> App:
    app = App()

    @app.websocket("/whoami")
    async def whoami(ws: WebSocket) -> None:
        offered = ws.request.headers.get("sec-websocket-protocol") or ""
        await ws.accept(subprotocol="v1" if "v1" in offered else None)
        tls = ws.request.tls
        name = tls.peer_common_name if tls is not None else None
        await ws.send_json({"name": name, "got": await ws.receive_text()})

    return app


def test_client_websocket_with_mutual_tls_and_base_url(tls_files: TLSFiles) -> None:
    async def main(port: int) -> tuple[object, str | None]:
        client = Client(
            base_url=f"https://localhost:{port}",
            ca=tls_files.ca_cert,
            cert=tls_files.client_cert,
            key=tls_files.client_key,
        )
        async with client, client.websocket("/whoami", subprotocols=["v1"]) as ws:
            await ws.send_text("hello")
            return await ws.receive_json(), ws.subprotocol

    with serve_in_thread(make_app(), tls_files, client_cert="required") as server:
        answer, subprotocol = asyncio.run(asyncio.wait_for(main(server.port), 20))
    assert answer == {"name": "test-client", "got": "hello"}
    assert subprotocol == "v1"


def test_client_websocket_verifies_the_server(tls_files: TLSFiles) -> None:
    async def untrusted(port: int) -> None:
        async with Client() as client, client.websocket(f"wss://localhost:{port}/whoami"):
            pass

    async def refused(port: int) -> None:
        async with Client(ca=tls_files.ca_cert) as client:
            async with client.websocket(f"wss://localhost:{port}/nowhere"):
                pass

    with serve_in_thread(make_app(), tls_files) as server:
        with pytest.raises(ConnectError, match="TLS handshake"):
            asyncio.run(asyncio.wait_for(untrusted(server.port), 20))
        with pytest.raises(RemoteProtocolError):
            asyncio.run(asyncio.wait_for(refused(server.port), 20))


def test_certificate_reload_leaves_open_websockets_alone(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    from tests.e2e.test_reload import issue, served_serial

    new_cert, new_key, new_serial = issue(tls_files.ca, tmp_path, "new")
    app = App()

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    with serve_in_thread(app, tls_files) as server:

        async def main() -> list[str]:
            async with Client(ca=tls_files.ca_cert) as client:
                async with client.websocket(f"wss://localhost:{server.port}/echo") as ws:
                    await ws.send_text("before")
                    got = [await ws.receive_text()]
                    await asyncio.to_thread(server.reload_certificate, new_cert, new_key)
                    assert await asyncio.to_thread(served_serial, server.port, tls_files) == (
                        new_serial
                    )
                    await ws.send_text("after")
                    got.append(await ws.receive_text())
                    return got

        assert asyncio.run(asyncio.wait_for(main(), 20)) == ["before", "after"]


def _open_sockets() -> set[str]:
    """This process's open socket descriptors."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                found.add(fd)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_a_refused_handshake_closes_its_socket_before_raising(tls_files: TLSFiles) -> None:
    # The refusal is raised only once the connection's socket is closed: a caller whose loop
    # ends right after (asyncio.run) would otherwise leave it open, with its TLS shutdown
    # unfinished, until garbage collection found it.
    async def refused(port: int) -> None:
        async with Client(ca=tls_files.ca_cert) as client:
            async with client.websocket(f"wss://localhost:{port}/nowhere"):
                pass

    with serve_in_thread(make_app(), tls_files) as server:
        before = _open_sockets()
        for _ in range(5):
            with pytest.raises(RemoteProtocolError, match="refused the WebSocket handshake"):
                asyncio.run(asyncio.wait_for(refused(server.port), 20))
        assert _open_sockets() - before == set()
