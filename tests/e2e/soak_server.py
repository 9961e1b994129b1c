"""The server of the soak tests, in a process of its own so that its memory is its own.

``python -m tests.e2e.soak_server --cert C --key K [--keep-alive S] [--head-timeout S]
[--write-timeout S]`` serves on 127.0.0.1 and a free port, on uvloop, and prints ``ready
PORT`` once it accepts; SIGTERM drains it and exits. Routes: ``/`` (13 bytes) and ``/big``
(``BIG`` bytes, for clients that never read it).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

from framework import App, Request, Response
from framework.server import Server
from framework.tls import CertificateStore

BIG = 16 * 1024 * 1024


def make_app() -> App:
    app = App()
    big = Response(b"x" * BIG, media_type="application/octet-stream")

    @app.get("/")
    async def hello(request: Request) -> str:
        return "Hello, world!"

    @app.get("/big")
    async def download(request: Request) -> Response:
        return big

    return app


async def serve(args: argparse.Namespace) -> None:
    server = Server(
        make_app(),
        host="127.0.0.1",
        port=0,
        ssl=CertificateStore(args.cert, args.key),
        keep_alive_timeout=args.keep_alive,
        head_timeout=args.head_timeout,
        write_timeout=args.write_timeout,
    )
    await server.start()
    print(f"ready {server.port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.aclose(2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.soak_server")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--keep-alive", type=float, default=5.0)
    parser.add_argument("--head-timeout", type=float, default=30.0)
    parser.add_argument("--write-timeout", type=float, default=30.0)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
