"""The command line: ``framework serve MODULE:ATTR`` and ``framework certs ...``.

Every user mistake (a bad argument, a module that will not import, an unusable certificate, a
port in use) ends in one line on stderr saying what is wrong and how to fix it, and exit
status 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .cli_limits import add_limit_flags, config_from_args, limits_table
from .errors import FrameworkError

__all__ = ["build_parser", "limits_table", "load_app", "main"]

PROG = "framework"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (not the usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def load_app(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (``ATTR`` may be dotted) from the current directory and return it.

    Raises:
        FrameworkError: one line naming what could not be found and how to fix it.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise FrameworkError(
            f"app must be given as MODULE:ATTR, e.g. examples.hello:app, not {spec!r}"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise FrameworkError(
                f"no module named {module_name!r} (from {spec!r}); run from the directory that "
                "holds it, or check the spelling"
            ) from exc
        raise FrameworkError(f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise FrameworkError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FrameworkError(
                f"module {module_name!r} has no attribute {attr!r}; names there: "
                f"{', '.join(n for n in dir(module) if not n.startswith('_'))[:200]}"
            ) from None
    if not callable(obj):
        raise FrameworkError(
            f"{spec} is a {type(obj).__name__}, not an app (an App instance or an ASGI app)"
        )
    return obj


def _serve(args: argparse.Namespace) -> int:
    from .deploy import serve

    if (args.client_cert != "required") and not args.client_ca:
        raise FrameworkError(
            "--client-cert needs --client-ca, the CA that signs client certificates"
        )
    config = config_from_args(args, h11_only=args.h11_only)
    from .cli_acme import acme_from_args

    acme = acme_from_args(args)
    from .asgi import as_handler

    try:
        app = as_handler(
            load_app(args.app), args.interface, root_path=args.root_path, lifespan=args.lifespan
        )
    except ValueError as exc:  # a root path that is not one
        raise FrameworkError(str(exc)) from exc
    serve(
        app,
        host=args.host,
        port=args.port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        tls=not args.no_tls,
        client_ca=args.client_ca,
        client_cert=args.client_cert,
        client_crl=args.client_crl,
        tls_profile=args.tls_profile,
        session_resumption=not args.no_session_resumption,
        access_log=not args.no_access_log,
        log_level=args.log_level,
        use_uvloop=args.loop != "asyncio",
        config=config,
        acme=acme,
    )
    return 0


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


def _limits(args: argparse.Namespace) -> int:
    print(limits_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog=PROG, description="An asyncio HTTPS web framework.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    serve = sub.add_parser("serve", help="serve an app over HTTPS")
    serve.add_argument("app", metavar="MODULE:ATTR", help="the app, e.g. examples.hello:app")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=_port, default=8443, help="port (default 8443)")
    serve.add_argument("--certfile", help="certificate chain (PEM); default: the development CA's")
    serve.add_argument("--keyfile", help="private key (PEM) of --certfile")
    serve.add_argument(
        "--no-tls", action="store_true", help="serve plain HTTP (behind a TLS proxy)"
    )
    serve.add_argument("--client-ca", help="ask clients for certificates signed by this CA (mTLS)")
    serve.add_argument(
        "--client-cert",
        choices=("required", "optional"),
        default="required",
        help="with --client-ca: refuse clients without one (required) or let handlers decide",
    )
    serve.add_argument(
        "--client-crl",
        metavar="CRL",
        help="with --client-ca: refuse client certificates this CRL (PEM) revokes; re-read on "
        "SIGHUP and when it changes",
    )
    serve.add_argument(
        "--tls-profile",
        choices=("intermediate", "modern"),
        default="intermediate",
        help="Mozilla's TLS profile: intermediate (TLS 1.2+, default) or modern (TLS 1.3 only)",
    )
    serve.add_argument(
        "--no-session-resumption",
        action="store_true",
        help="no TLS session tickets or session cache: every handshake is a full one",
    )
    serve.add_argument("--no-access-log", action="store_true", help="no line per request")
    serve.add_argument(
        "--h11-only",
        action="store_true",
        help="read every request with h11, none on the plain-message fast path",
    )
    serve.add_argument(
        "--interface",
        choices=("auto", "asgi", "native"),
        default="auto",
        help="how to call the app: ASGI 3 (scope, receive, send), native (request), or tell "
        "by its signature (default; an App is native)",
    )
    serve.add_argument(
        "--root-path",
        default="",
        help="ASGI apps: the path they are mounted at behind a proxy (scope root_path)",
    )
    serve.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default="auto",
        help="ASGI apps: run the lifespan protocol when supported (auto), always, or never",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    add_limit_flags(serve)
    from .cli_acme import add_acme_flags

    add_acme_flags(serve)
    serve.set_defaults(func=_serve)

    limits = sub.add_parser("limits", help="print every limit and default as a Markdown table")
    limits.set_defaults(func=_limits)

    from . import cli_certs

    cli_certs.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not as a warning at exit
    except BrokenPipeError:
        # The reader stopped early (`framework certs show c.pem | head -1`): stop quietly,
        # as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except FrameworkError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
