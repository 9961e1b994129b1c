"""The command line: ``framework serve MODULE:ATTR``, ``framework certs ...``, ``framework load``.

Every user mistake (a bad argument, a module that will not import, an unusable certificate, a
port in use) ends in one line on stderr saying what is wrong and how to fix it, and exit
status 2; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from .cli_limits import add_limit_flags, config_from_args, limits_table
from .cli_ops import add_ops_flags, ops_config
from .errors import FrameworkError
from .limits import GRACEFUL_SHUTDOWN_TIMEOUT

__all__ = ["build_parser", "limits_table", "load_app", "main"]

PROG = "framework"

SIGNALS = """signals:
  SIGTERM, SIGINT  stop gracefully: stop accepting (connections already waiting are served),
                   close idle connections, answer requests that have arrived with
                   Connection: close, cancel what still runs after --graceful-timeout, run
                   the shutdown hooks, exit 0. A second SIGINT stops at once (exit 130).
  SIGHUP           reload the certificate, key and client CRL (checked first; on failure
                   the old ones stay and the log says why). The files are also watched
                   (every 2 s) unless --no-watch-certs.
exit status: 0 stopped cleanly, 2 a usage or configuration error."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (not the usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without the frames of the import machinery and of this package.

    A module that fails to import is a bug in the user's code: its file and line are what they
    need, not ``importlib``'s frames or ours.
    """
    skipped = (
        "<frozen ",
        os.path.dirname(os.path.abspath(__file__)) + os.sep,
        os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep,
    )
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(skipped)
    ]
    text = "".join(traceback.format_list(frames))
    head = "Traceback (most recent call last):\n" if text else ""
    return head + text + "".join(traceback.format_exception_only(exc))


def load_app(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (``ATTR`` may be dotted) from the current directory and return it.

    Raises:
        FrameworkError: naming what could not be found and how to fix it; when the module
            itself raised, its traceback (the user's frames) follows on the next lines.
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
        raise FrameworkError(
            f"importing {module_name!r} failed: {exc}\n{_user_traceback(exc)}".rstrip()
        ) from exc
    except Exception as exc:
        raise FrameworkError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}\n"
            + _user_traceback(exc).rstrip()
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
    from .cli_acme import acme_from_args
    from .cli_deploy import listen_or_supervise
    from .deploy import serve

    if args.reload:
        from .deploy.reload import app_directory, run_with_reload

        if args.workers != 1:
            raise FrameworkError("--reload runs one server process; drop --workers (or --reload)")
        serve_argv = [a for a in args.argv[1:] if a != "--reload"]
        return run_with_reload(serve_argv, app_directory(args.app))
    acme = acme_from_args(args)  # checked before any socket is made
    if acme is not None and args.workers != 1 and "FRAMEWORK_WORKER" not in os.environ:
        from .cli_acme import acme_for_workers

        acme_for_workers(args, acme, getattr(args, "argv", None) or sys.argv[1:])
        acme = None  # the supervisor renews; its workers serve the files
    listening = listen_or_supervise(args)  # the sockets; with --workers, the supervisor runs
    if isinstance(listening, int):
        return listening
    try:
        if (args.client_cert != "required") and not args.client_ca:
            raise FrameworkError(
                "--client-cert needs --client-ca, the CA that signs client certificates"
            )
        config = config_from_args(args, h11_only=args.h11_only, **ops_config(args))
        from .asgi import as_handler

        target = load_app(args.app)
        if args.factory:
            target = _call_factory(args.app, target)
        elif _takes_no_arguments(target):
            raise FrameworkError(
                f"{args.app} takes no arguments, so it is not an app; if it makes one "
                "(create_app()), pass --factory"
            )
        try:
            app = as_handler(
                target, args.interface, root_path=args.root_path, lifespan=args.lifespan
            )
        except ValueError as exc:  # a root path that is not one
            raise FrameworkError(str(exc)) from exc
        serve(
            app,
            sockets=listening.sockets,
            events=listening.events,
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
            log_config=args.log_config,
            use_uvloop=args.loop != "asyncio",
            config=config,
            graceful_timeout=args.graceful_timeout,
            watch_certs=not args.no_watch_certs,
            acme=acme,
        )
    except BaseException:
        # A configuration error found after the sockets were made: give the addresses back.
        for sock in listening.sockets:
            sock.close()
        raise
    return 0


def _takes_no_arguments(obj: Any) -> bool:
    """True for a function callable only as ``f()``: a factory, never an ASGI app or handler."""
    if not inspect.isfunction(obj):
        return False
    for p in inspect.signature(obj).parameters.values():
        if p.kind is p.VAR_POSITIONAL or (p.default is p.empty and p.kind is not p.VAR_KEYWORD):
            return False
    return True


def _call_factory(spec: str, factory: Any) -> Any:
    """``--factory``: the app is what ``MODULE:ATTR()`` returns (``create_app()``)."""
    try:
        app = factory()
    except TypeError as exc:
        raise FrameworkError(
            f"--factory calls {spec}() with no arguments, which failed: {exc}"
        ) from exc
    except Exception as exc:
        raise FrameworkError(
            f"{spec}() failed: {type(exc).__name__}: {exc}\n" + _user_traceback(exc).rstrip()
        ) from exc
    if not callable(app):
        raise FrameworkError(
            f"{spec}() returned a {type(app).__name__}, not an app (an App or an ASGI app)"
        )
    return app


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


def _graceful_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(
            f"--graceful-timeout must be seconds (0 or more), e.g. 10 or 0.5, not {value!r}"
        )
    return seconds


def _limits(args: argparse.Namespace) -> int:
    print(limits_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog=PROG, description="An asyncio HTTPS web framework.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    serve = sub.add_parser(
        "serve",
        help="serve an app over HTTPS",
        epilog=SIGNALS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("app", metavar="MODULE:ATTR", help="the app, e.g. examples.hello:app")
    serve.add_argument(
        "--factory",
        action="store_true",
        help="MODULE:ATTR is a function that makes the app (create_app): call it, serve that",
    )
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
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="the framework loggers' level (default info, or what --log-config sets)",
    )
    serve.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    serve.add_argument(
        "--graceful-timeout",
        type=_graceful_seconds,
        default=GRACEFUL_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may run before they are cancelled "
        f"(default {GRACEFUL_SHUTDOWN_TIMEOUT:g})",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="development: restart the server when a .py file under the app's directory changes",
    )
    serve.add_argument(
        "--no-watch-certs",
        action="store_true",
        help="do not reload the certificate when its files change (SIGHUP still reloads)",
    )
    add_limit_flags(serve)
    add_ops_flags(serve)
    serve.set_defaults(func=_serve)
    from .cli_deploy import add_deploy_flags

    add_deploy_flags(serve)
    from .cli_acme import add_acme_flags

    add_acme_flags(serve)

    limits = sub.add_parser("limits", help="print every limit and default as a Markdown table")
    limits.set_defaults(func=_limits)

    from . import cli_certs

    cli_certs.register(sub)
    # Listed here for --help; main() hands everything after "load" to the load tool's parser.
    sub.add_parser("load", help="load-test an HTTPS server (framework load --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["load"]:
        from .load.cli import main as load_main

        return load_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # for serve --reload's child
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
        return int(getattr(exc, "exit_status", 2))  # 3: the app's startup failed
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
