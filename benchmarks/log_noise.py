"""``python -m benchmarks.log_noise``: what misbehaving clients write to the server's log.

N clients (loopback only) each send a request whose body never arrives whole: half leave
mid-body, half send a malformed chunk size. The ``framework`` loggers write at INFO, as under
``framework serve``; the log's size, lines and tracebacks are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import ssl
import tempfile
from pathlib import Path

from framework import App, Request, pki
from framework.deploy import new_event_loop
from framework.server import Server
from framework.tls import CertificateStore


async def run(clients: int) -> None:
    base = Path(tempfile.mkdtemp())
    ca = pki.CertificateAuthority.create(base / "ca", name="log noise CA")
    ca.issue(["localhost"]).write(base / "s.pem", base / "s.key")
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    context = ssl.create_default_context(cafile=str(base / "ca" / "ca.pem"))
    store = CertificateStore(base / "s.pem", base / "s.key")
    async with Server(app, port=0, ssl=store) as server:
        for i in range(clients):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=context, server_hostname="localhost"
            )
            head = b"POST /upload HTTP/1.1\r\nHost: localhost\r\n"
            if i % 2:
                writer.write(head + b"Content-Length: 100\r\n\r\n0123456789")
                await writer.drain()
                await asyncio.sleep(0.005)  # the client's pace: the server reads, then it leaves
                writer.transport.abort()
            else:
                writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nZZ\r\n")
                await writer.drain()
                await reader.read()
                writer.close()


def main() -> None:
    """Run from the command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.log_noise")
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("framework")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:  # uvloop, as serve runs
        runner.run(run(args.clients))
    text = stream.getvalue()
    print(
        f"{args.clients} clients: {len(text):,} bytes of log, {text.count(chr(10))} lines, "
        f"{text.count('Traceback')} tracebacks"
    )


if __name__ == "__main__":
    main()
