"""``framework serve`` with WebSockets: the ``--ws-*`` flags, and drain under load.

The server-wide limits from the flags apply to routes that set none and a route's own
option wins. With 500 open WebSockets, SIGTERM sends each client close 1001 (going away)
and the process exits 0 within the graceful timeout, as a process manager expects.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from framework.limits import GRACEFUL_SHUTDOWN_TIMEOUT
from tests.conftest import TLSFiles
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

CLIENTS = 500


def test_ws_flags_set_server_defaults_and_route_options_win(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    args = ["tests.e2e.ws_apps:native_ws", "--port", "0", "--no-access-log"]
    args += ["--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key)]
    args += ["--ws-max-size", "1KiB"]
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    message = "x" * 2048

    async def main(port: int) -> tuple[int | None, str]:
        base = f"wss://localhost:{port}"
        async with connect(base + "/echo", ssl=context, compression=None) as ws:
            await ws.send(message)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            code = ws.close_code
        async with connect(base + "/big", ssl=context, compression=None) as ws:
            await ws.send(message)
            echoed = str(await ws.recv())
        return code, echoed

    with serve_cli(args, env=environment(tmp_path), cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        code, echoed = asyncio.run(asyncio.wait_for(main(port), 30))
    assert code == 1009  # over the server-wide 1 KiB
    assert echoed == message  # the route's own 64 KiB


@pytest.mark.slow
def test_sigterm_with_500_open_websockets_sends_1001_and_exits_in_time(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    args = ["tests.e2e.ws_apps:native_ws", "--port", "0", "--no-access-log"]
    args += ["--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key)]
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    with serve_cli(args, env=environment(tmp_path), cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        url = f"wss://localhost:{port}/echo"

        async def main() -> tuple[list[int | None], float]:
            gate = asyncio.Semaphore(50)  # handshakes at once: the 2-core CI box

            async def open_one(n: int) -> ClientConnection:
                async with gate:
                    ws = await connect(url, ssl=context, open_timeout=30, ping_interval=None)
                    await ws.send(f"hello {n}")
                    assert await ws.recv() == f"hello {n}"  # open and served
                    return ws

            sockets = await asyncio.gather(*(open_one(n) for n in range(CLIENTS)))

            async def closed(ws: ClientConnection) -> int | None:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                return ws.close_code

            started = time.monotonic()
            running.process.send_signal(signal.SIGTERM)
            codes = await asyncio.gather(*(closed(ws) for ws in sockets))
            exit_wait = asyncio.to_thread(running.process.wait, STARTUP_TIMEOUT)
            status = await exit_wait
            assert status == 0, running.rest()[-5:]
            return codes, time.monotonic() - started

        codes, took = asyncio.run(asyncio.wait_for(main(), 120))
    assert codes == [1001] * CLIENTS
    assert took < GRACEFUL_SHUTDOWN_TIMEOUT, f"exited {took:.1f}s after SIGTERM"
    print(f"500 WebSockets closed with 1001, process exited {took:.2f}s after SIGTERM")
