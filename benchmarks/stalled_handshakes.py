"""``python -m benchmarks.stalled_handshakes``: clients that connect and never handshake.

Opens N TCP connections to a server (loopback only) that send nothing, measures what the
server holds for them (connections, file descriptors, resident memory), then how long a
well-behaved client behind them waits for its answer. With ``max_connections`` the server
holds at most that many and the rest wait in the kernel's backlog until the handshake
deadline frees a place; without a cap it holds them all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import tempfile
import time
from pathlib import Path

from framework import App, Request, pki
from framework.server import Server
from framework.tls import CertificateStore


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mib() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def run(clients: int, max_connections: int, handshake_timeout: float) -> None:
    base = Path(tempfile.mkdtemp())
    ca = pki.CertificateAuthority.create(base / "ca", name="stalled handshakes CA")
    ca.issue(["localhost", "127.0.0.1"]).write(base / "s.pem", base / "s.key")
    app = App()

    @app.get("/")
    async def hello(request: Request) -> str:
        return "hello"

    store = CertificateStore(base / "s.pem", base / "s.key")
    async with Server(
        app,
        port=0,
        ssl=store,
        max_connections=max_connections,
        tls_handshake_timeout=handshake_timeout,
    ) as server:
        fds, rss = _fds(), _rss_mib()
        stalled = []
        for _ in range(clients):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", server.port))
            except BlockingIOError:
                pass
            stalled.append(sock)
        peak = 0
        for _ in range(20):  # a second for the server to take what it will
            await asyncio.sleep(0.05)
            peak = max(peak, server.open_connections)
        print(
            f"{clients} stalled clients, max_connections={max_connections}: the server holds "
            f"{peak}, {_fds() - fds - clients} file descriptors and {_rss_mib() - rss:.0f} MiB"
        )
        context = ssl.create_default_context(cafile=str(base / "ca" / "ca.pem"))
        started = time.monotonic()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
            ),
            120,
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status = (await reader.readline()).decode().strip()
        print(f"a good client behind them: {status} after {time.monotonic() - started:.1f} s")
        writer.close()
        for sock in stalled:
            sock.close()


def main() -> None:
    """Run from the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stalled_handshakes")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--handshake-timeout", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(run(args.clients, args.max_connections, args.handshake_timeout))


if __name__ == "__main__":
    main()
