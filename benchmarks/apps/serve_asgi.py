"""Start one server for the raw ASGI hello app (``asgi_hello.py``), in this process, on uvloop.

``python -m benchmarks.apps.serve_asgi KIND --port P --cert C --key K [--no-tickets]``, KIND
one of ``SERVERS``: this package with the ASGI adapter (``asgi-ours``) or the native twin
route (``asgi-native``), uvicorn (h11, httptools), hypercorn, Granian. Like ``serve.py``, each
runs in the process that was started, except Granian, whose worker is a child process.
"""

from __future__ import annotations

import argparse
import sys

import uvloop

from .serve import _no_tickets, _until_signal

SERVERS = (
    "asgi-ours",
    "asgi-native",
    "asgi-uvicorn-h11",
    "asgi-uvicorn-httptools",
    "asgi-hypercorn",
    "asgi-granian",
)
APP = "benchmarks.apps.asgi_hello:app"


async def _serve_ours(args: argparse.Namespace) -> None:
    from framework.asgi import ASGIHandler
    from framework.server import Server
    from framework.tls import CertificateStore

    from .asgi_hello import app, native

    store = CertificateStore(args.cert, args.key)
    if args.no_tickets:
        _no_tickets(store.context)
    handler = native if args.kind == "asgi-native" else ASGIHandler(app)
    hooks = getattr(handler, "startup", None), getattr(handler, "shutdown", None)
    server = Server(
        handler,
        host=args.host,
        port=args.port,
        ssl=store,
        access_log=False,
        startup=[hooks[0]] if hooks[0] else [],
        shutdown=[hooks[1]] if hooks[1] else [],
    )
    await server.start()
    print(f"ready {server.url}", flush=True)
    await _until_signal()
    await server.aclose(5)


def _run_uvicorn(args: argparse.Namespace, http: str) -> None:
    import uvicorn

    from .asgi_hello import app

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=http,
        lifespan="on",
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        access_log=False,
    )
    config.load()
    if args.no_tickets:
        _no_tickets(config.ssl)  # type: ignore[arg-type]
    uvicorn.Server(config).run()


async def _serve_hypercorn(args: argparse.Namespace) -> None:
    import ssl

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from .asgi_hello import app

    class _Config(Config):  # type: ignore[misc]
        def create_ssl_context(self) -> ssl.SSLContext | None:
            ctx = super().create_ssl_context()
            return _no_tickets(ctx) if args.no_tickets and ctx is not None else ctx

    config = _Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.certfile, config.keyfile = args.cert, args.key
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.alpn_protocols = ["http/1.1"]
    await serve(app, config, shutdown_trigger=_until_signal)  # type: ignore[arg-type]


def _run_granian(args: argparse.Namespace) -> None:
    # Granian's TLS is rustls: session resumption cannot be turned off from here.
    from pathlib import Path

    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        APP,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=1,
        loop=Loops.uvloop,
        ssl_cert=Path(args.cert),
        ssl_key=Path(args.key),
        log_enabled=False,
    ).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.apps.serve_asgi")
    parser.add_argument("kind", choices=SERVERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--no-tickets", action="store_true", help="no TLS session resumption")
    args = parser.parse_args(argv)
    if args.kind.startswith("asgi-uvicorn"):
        _run_uvicorn(args, args.kind.removeprefix("asgi-uvicorn-"))
    elif args.kind == "asgi-granian":
        _run_granian(args)
    elif args.kind == "asgi-hypercorn":
        uvloop.run(_serve_hypercorn(args))
    else:
        uvloop.run(_serve_ours(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
