"""Start one benchmark server in this process, on uvloop, until SIGTERM or SIGINT.

``python -m benchmarks.apps.serve KIND --port P --cert C --key K [--no-tickets]
[--access-log FILE] [--h11-only] [--lazy-tasks] [--framework-tls]``, with KIND one of
``SERVERS``. Every server runs in the process that was
started (no worker or reloader child), so the caller can pin it and read its CPU time and
memory from /proc. ``--no-tickets`` turns TLS session resumption off (no TLS 1.3 tickets, no
TLS 1.2 tickets), so a client reconnecting pays for a full handshake on every server alike.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from typing import Any

import uvloop

SERVERS = ("ours", "uvicorn-h11", "uvicorn-httptools", "hypercorn", "aiohttp", "bare", "bare-h11")

HELLO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 13\r\n"
    b"\r\nHello, world!"
)


def _no_tickets(ctx: ssl.SSLContext) -> ssl.SSLContext:
    # TLS 1.3 resumption needs tickets, and num_tickets = 0 sends none; OP_NO_TICKET stops
    # TLS 1.2 tickets. (The stdlib cannot turn off OpenSSL's TLS 1.2 session-ID cache; clients
    # here negotiate TLS 1.3, so it is never consulted.)
    ctx.num_tickets = 0
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def _plain_context(cert: str, key: str, no_tickets: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return _no_tickets(ctx) if no_tickets else ctx


def _lazy_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, **kwargs)


def _framework_context(cert: str, key: str, no_tickets: bool) -> ssl.SSLContext:
    """The server ``SSLContext`` this package makes (its cipher and protocol policy)."""
    from framework.tls import CertificateStore

    ctx = CertificateStore(cert, key).context
    return _no_tickets(ctx) if no_tickets else ctx


async def _until_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --- ours ----------------------------------------------------------------------------------


async def _serve_ours(args: argparse.Namespace) -> None:
    from framework import accesslog
    from framework.server import Server
    from framework.tls import CertificateStore

    from .ours import app

    store = CertificateStore(args.cert, args.key)
    if args.no_tickets:
        _no_tickets(store.context)
    if args.access_log:
        # What `framework serve` sets up, with a file for stderr.
        accesslog.install(open(args.access_log, "a"))  # noqa: ASYNC230 - before serving
        logging.getLogger("framework.access").setLevel(logging.INFO)
    if args.lazy_tasks:
        # A task factory of the application's own: the server then uses it for its request
        # tasks instead of starting them eagerly (Python 3.12+), as on 3.11.
        asyncio.get_running_loop().set_task_factory(_lazy_task)
    server = Server(
        app,
        host=args.host,
        port=args.port,
        ssl=store,
        access_log=bool(args.access_log),
        h11_only=args.h11_only,
    )
    await server.start()
    print(f"ready {server.url}", flush=True)
    await _until_signal()
    await server.aclose(5)


# --- uvicorn, hypercorn, aiohttp --------------------------------------------------------------


def _run_uvicorn(args: argparse.Namespace, http: str) -> None:
    import uvicorn

    from .starlette_app import app

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=http,
        lifespan="off",
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        access_log=bool(args.access_log),
    )
    config.load()
    if args.no_tickets:
        _no_tickets(config.ssl)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


async def _serve_hypercorn(args: argparse.Namespace) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from .starlette_app import app

    class _Config(Config):  # type: ignore[misc]
        def create_ssl_context(self) -> ssl.SSLContext | None:
            ctx = super().create_ssl_context()
            return _no_tickets(ctx) if args.no_tickets and ctx is not None else ctx

    config = _Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.certfile, config.keyfile = args.cert, args.key
    config.accesslog = args.access_log or None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.alpn_protocols = ["http/1.1"]
    await serve(app, config, shutdown_trigger=_until_signal)  # type: ignore[arg-type]


async def _serve_aiohttp(args: argparse.Namespace) -> None:
    from aiohttp import web

    from .aiohttp_app import make_app

    runner = web.AppRunner(make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        args.host,
        args.port,
        ssl_context=_plain_context(args.cert, args.key, args.no_tickets),
    )
    await site.start()
    print("ready", flush=True)
    try:
        await _until_signal()
    finally:
        await runner.cleanup()


# --- the floors ----------------------------------------------------------------------------


class _FixedBytes(asyncio.Protocol):
    """Answers every chunk received with the same response, parsing nothing: the TLS floor."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(HELLO_RESPONSE)


class _BareH11(asyncio.Protocol):
    """h11 in a bare Protocol: parse the request, answer hello; the HTTP/1.1 parsing floor."""

    def connection_made(self, transport: Any) -> None:
        import h11

        self.h11 = h11
        self.transport = transport
        self.conn = h11.Connection(h11.SERVER)
        self.head = h11.Response(
            status_code=200,
            headers=[("content-type", "text/plain; charset=utf-8"), ("content-length", "13")],
        )
        self.body = h11.Data(data=b"Hello, world!")
        self.end = h11.EndOfMessage()

    def data_received(self, data: bytes) -> None:
        h11, conn = self.h11, self.conn
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            kind = type(event)
            if kind is h11.EndOfMessage:
                self.transport.write(
                    conn.send(self.head) + conn.send(self.body) + conn.send(self.end)
                )
                conn.start_next_cycle()
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif kind is h11.ConnectionClosed:
                self.transport.close()
                return


async def _serve_bare(args: argparse.Namespace, factory: type[asyncio.Protocol]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        args.host,
        args.port,
        ssl=(_framework_context if args.framework_tls else _plain_context)(
            args.cert, args.key, args.no_tickets
        ),
        backlog=2048,
    )
    print("ready", flush=True)
    await _until_signal()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apps.serve")
    parser.add_argument("kind", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--no-tickets", action="store_true", help="no TLS session resumption")
    parser.add_argument("--access-log", metavar="FILE", help="log one line per request here")
    parser.add_argument("--h11-only", action="store_true", help="ours: no plain-message path")
    parser.add_argument(
        "--lazy-tasks", action="store_true", help="ours: no eager request tasks (Python 3.12+)"
    )
    parser.add_argument(
        "--framework-tls", action="store_true", help="bare kinds: this package's SSLContext"
    )
    args = parser.parse_args(argv)
    if args.kind.startswith("uvicorn"):
        _run_uvicorn(args, args.kind.removeprefix("uvicorn-"))
        return 0
    runners = {
        "ours": lambda: _serve_ours(args),
        "hypercorn": lambda: _serve_hypercorn(args),
        "aiohttp": lambda: _serve_aiohttp(args),
        "bare": lambda: _serve_bare(args, _FixedBytes),
        "bare-h11": lambda: _serve_bare(args, _BareH11),
    }
    uvloop.run(runners[args.kind]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
