"""One server process: run a server in this process until a signal says stop.

``serve()`` picks the event loop (uvloop when installed), the certificate (the development CA
when none is given), installs SIGINT/SIGTERM handlers that drain gracefully, and prints how to
reach the server. It listens on sockets made elsewhere when given them (``deploy.sockets``)
and tells ``ProcessEvents`` (systemd, a supervisor) when it serves, reloads and stops.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypedDict, Unpack

from .. import accesslog, limits
from ..errors import FrameworkError
from ..pki import DevCertificate
from ..server import Handler, Server, ServerConfig
from ..tls import CertificateStore, ClientCertMode, TLSProfile
from .certwatch import CertificateWatcher

__all__ = [
    "ListenOptions",
    "ProcessEvents",
    "StartupFailed",
    "new_event_loop",
    "serve",
    "start_server",
]

if TYPE_CHECKING:
    from ..acme import AcmeSettings

log = logging.getLogger("framework")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop: uvloop's when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where the platform has it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ListenOptions(TypedDict, total=False):
    """Where and how ``serve()`` and ``start_server()`` listen; every key may be left out.

    Keys:
        host, port: where to listen (``127.0.0.1``, 8443).
        certfile, keyfile: the certificate chain and key to serve with (the development CA's
            ``localhost`` certificate when there is no ``certfile``).
        tls: ``False`` serves plain HTTP, for use behind a TLS-terminating proxy.
        client_ca, client_cert: ask clients for certificates (mutual TLS); ``client_cert`` is
            ``"required"`` (the default) or ``"optional"``.
        client_crl: with ``client_ca``: refuse the client certificates this CRL revokes
            (re-read on SIGHUP and when the file changes).
        tls_profile: Mozilla's ``"intermediate"`` (TLS 1.2 and 1.3, the default) or
            ``"modern"`` (TLS 1.3 only).
        session_resumption: ``False`` turns off session tickets and the session cache.
        access_log: log one line per request (on by default).
        sockets: listen on these sockets (bound, from ``deploy.sockets``) instead of
            ``host``/``port``.
        acme: obtain the certificate from an ACME CA and renew it (``AcmeSettings``, or a
            list of domain names with the other settings at their defaults).
    """

    host: str
    port: int
    certfile: str | None
    keyfile: str | None
    tls: bool
    client_ca: str | None
    client_cert: ClientCertMode
    client_crl: str | None
    tls_profile: TLSProfile
    session_resumption: bool
    access_log: bool
    sockets: Sequence[socket.socket]
    acme: AcmeSettings | Sequence[str] | None


def _certificates(options: ListenOptions) -> tuple[CertificateStore, DevCertificate | None]:
    """The certificate store, and the development CA's files when that is what is used."""
    certfile, keyfile = options.get("certfile"), options.get("keyfile")
    settings: dict[str, Any] = {
        "client_ca": options.get("client_ca"),
        "client_cert": options.get("client_cert", "required"),
        "client_crl": options.get("client_crl"),
        "tls_profile": options.get("tls_profile", "intermediate"),
        "session_resumption": options.get("session_resumption", True),
    }
    if settings["client_crl"] is not None and settings["client_ca"] is None:
        raise FrameworkError("--client-crl needs --client-ca, the CA whose certificates it revokes")
    if certfile is None:
        if keyfile is not None:
            raise FrameworkError("--keyfile was given without --certfile; pass both, or neither")
        from ..pki import dev_certificate

        dev = dev_certificate()
        store = CertificateStore(dev.cert_path, dev.key_path, **settings)
        return store, dev
    return CertificateStore(certfile, keyfile, **settings), None


async def start_server(
    handler: Handler,
    *,
    out: TextIO | None = None,
    config: ServerConfig | None = None,
    **options: Unpack[ListenOptions],
) -> Server:
    """Start a ``Server`` for ``handler`` on the running loop and print how to reach it.

    The app's startup hooks run first (when ``handler`` has ``startup``/``shutdown``
    coroutine methods, as ``App`` does); its shutdown hooks run when the server closes.

    Args:
        handler: an ``App``, any ``async (Request) -> Response`` callable, or an ASGI 3 app
            (``async (scope, receive, send)``, served through ``ASGIHandler``).
        out: where to print the start-up lines (nowhere when ``None``).
        config: the server's limits and timeouts (``ServerConfig``).
        options: see ``ListenOptions``.

    Raises:
        FrameworkError: with a one-line message, when the certificate or the address is unusable.
    """
    host = options.get("host", "127.0.0.1")
    port = options.get("port", 8443)
    dev_ca: DevCertificate | None = None
    store: CertificateStore | None = None
    acme = None
    if options.get("acme") and options.get("tls", True):
        from ..acme import start_acme

        acme = await start_acme(options, host, port)  # the certificate to serve, and renewal
        options = {**options, "certfile": str(acme.certfile), "keyfile": str(acme.keyfile)}
    if options.get("tls", True):
        store, dev_ca = _certificates(options)
    elif any(options.get(k) for k in ("certfile", "keyfile", "client_ca", "client_crl")):
        raise FrameworkError(
            "--no-tls serves plain HTTP; drop --certfile/--keyfile/--client-ca/--client-crl"
        )
    from ..asgi import ASGIHandler, interface_of

    if interface_of(handler) == "asgi":
        handler = ASGIHandler(handler)  # type: ignore[arg-type]  # serve(fastapi_app) works too
    if store is not None and getattr(handler, "server_cert", False) is None:
        # An ASGI app's TLS extension names the certificate presented (the leaf, PEM).
        handler.server_cert = _leaf_pem(store.certfile)  # type: ignore[attr-defined]
    startup = [_guarded(handler.startup)] if hasattr(handler, "startup") else []
    shutdown = [handler.shutdown] if hasattr(handler, "shutdown") else []
    if acme is not None:
        shutdown.append(acme.aclose)
    server = Server(
        handler,
        host=host,
        port=port,
        sockets=options.get("sockets", ()),
        ssl=store,
        startup=startup,
        shutdown=shutdown,
        config=config,
        access_log=options.get("access_log", True),
    )
    try:
        await server.start()
    except StartupFailed:
        if acme is not None:
            await acme.aclose()
        raise
    except OSError as exc:
        if acme is not None:
            await acme.aclose()
        if exc.errno == errno.EADDRINUSE:
            raise FrameworkError(
                f"cannot listen on {host}:{port}: the address is already in use; stop the other "
                "server or pick another --port"
            ) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise FrameworkError(
                f"cannot listen on {host}:{port}: permission denied; ports below 1024 need "
                "privileges, pick --port 8443"
            ) from exc
        raise FrameworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except BaseException:
        if acme is not None:
            await acme.aclose()
        raise
    if acme is not None:
        acme.attach(server)
    if out is not None:
        _announce(server, dev_ca, out)
    return server


class StartupFailed(FrameworkError):
    """An app's startup hook raised: the server did not start (exit status 3)."""

    exit_status = 3


def _guarded(hook: Callable[[], Any]) -> Callable[[], Any]:
    async def startup() -> None:
        try:
            await hook()
        except FrameworkError:
            raise  # already one line a user can act on (an ASGI app's lifespan message)
        except Exception as exc:
            log.exception("the app's startup failed")
            raise StartupFailed(
                f"the app's startup failed ({type(exc).__name__}: {exc}); see the traceback above"
            ) from exc

    return startup


def _leaf_pem(certfile: object) -> str | None:
    try:
        with open(str(certfile), encoding="ascii") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return None
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    stop = text.find(end, start)
    return text[start : stop + len(end)] + "\n" if start >= 0 and stop >= 0 else None


def _announce(server: Server, dev: DevCertificate | None, out: TextIO) -> None:
    url = server.url + "/"
    if server.sockets and all(s.family == socket.AF_UNIX for s in server.sockets):
        url = f"{url.partition(':')[0]} on {server.sockets[0].getsockname()}"
    lines = [f"framework: serving on {url} (press Ctrl-C to stop)"]
    if len(server.sockets) > 1:
        from .sockets import describe

        lines.append(f"framework: listening on {', '.join(map(describe, server.sockets))}")
    if not server.is_tls:
        lines.append("framework: plain HTTP (--no-tls): put a TLS-terminating proxy in front")
    elif dev is not None:
        if dev.created:
            # Once, when nothing trusts it yet: a browser opening the URL would show a warning.
            lines.append(
                f"framework: made a new local development CA in {dev.ca_cert_path.parent}; "
                "to trust it in browsers and system tools: framework certs trust"
            )
        lines.append(f"framework: certificate from the local development CA {dev.ca_cert_path}")
        lines.append(f"framework: try it: curl --cacert {dev.ca_cert_path} {url}")
    elif server.certificates is not None:
        lines.append(f"framework: certificate {server.certificates.certfile}")
    print("\n".join(lines), file=out, flush=True)


class ProcessEvents(Protocol):
    """Told of a serving process's life; each call must return at once.

    Attributes:
        announce: False when the process should not print its start-up lines (a worker's
            supervisor prints them once for all).
    """

    announce: bool

    def ready(self, server: Server) -> None:
        """The server accepts connections."""

    def reloading(self) -> None:
        """SIGHUP arrived: the certificates are about to be re-read."""

    def reloaded(self, ok: bool) -> None:
        """The reload is over (``ok`` False: refused, the old certificates serve on)."""

    def stopping(self) -> None:
        """A stop signal arrived: the server drains."""


def serve(
    handler: Handler,
    *,
    log_level: str | None = None,
    log_config: str | None = None,
    use_uvloop: bool = True,
    graceful_timeout: float = limits.GRACEFUL_SHUTDOWN_TIMEOUT,
    events: Sequence[ProcessEvents] = (),
    ready: Callable[[Server], None] | None = None,
    config: ServerConfig | None = None,
    watch_certs: bool = True,
    **options: Unpack[ListenOptions],
) -> None:
    """Serve ``handler`` until SIGINT or SIGTERM, then drain and return.

    With no ``certfile``, a certificate for ``localhost``, ``127.0.0.1`` and ``::1`` from the
    local development CA is used (made on first use under ``$FRAMEWORK_HOME``).

    Args:
        handler: an ``App`` or any ``async (Request) -> Response`` callable.
        options: where and how to listen (``ListenOptions``: host, port, certfile, keyfile,
            tls, client_ca, client_cert, client_crl, tls_profile, session_resumption,
            access_log).
        log_level: the ``framework`` loggers' level (``info`` unless ``log_config`` sets it).
        log_config: a logging configuration file (JSON for ``dictConfig``, else INI for
            ``fileConfig``) that replaces the default stderr handlers.
        graceful_timeout: how long in-flight requests may run after a stop signal.
        events: told when the server serves, reloads and stops (systemd, a supervisor).
        ready: called with the server once it listens.
        config: the server's limits and timeouts (``ServerConfig``).
        watch_certs: reload the certificate when its files change (``CertificateWatcher``),
            as well as on SIGHUP.

    Raises:
        FrameworkError: a one-line message when the server cannot start.
    """
    log_format = config.access_log_format if config is not None else "text"
    _configure_logging(log_level, log_config, log_format)
    loop = new_event_loop() if use_uvloop else asyncio.new_event_loop()
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.run(_serve(handler, graceful_timeout, ready, config, options, events, watch_certs))


async def _serve(
    handler: Handler,
    graceful_timeout: float,
    ready: Callable[[Server], None] | None,
    config: ServerConfig | None,
    options: ListenOptions,
    events: Sequence[ProcessEvents] = (),
    watch_certs: bool = True,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    started: list[Server] = []
    watchers: list[CertificateWatcher] = []
    # Installed before the start-up line is printed: whoever reads it (a supervisor, a test)
    # may signal at once, and must get a graceful stop rather than the default kill. SIGHUP
    # re-reads the certificate files (after a renewal wrote them anew), as nginx does; without
    # TLS there is nothing to re-read, but a process manager's reload must not kill the server
    # (SIGHUP's default action), so it is logged and ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, started, watchers, events)
    try:
        # A supervisor's workers leave the start-up lines to the supervisor.
        out = sys.stderr if all(observer.announce for observer in events) else None
        server = await start_server(handler, out=out, config=config, **options)
    except BaseException:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        raise
    started.append(server)
    if watch_certs and server.certificates is not None:
        watchers.append(CertificateWatcher(server))
        watchers[0].start()
    if ready is not None:
        ready(server)
    for observer in events:
        observer.ready(server)
    try:
        await stop.wait()
    finally:
        # A second SIGINT (Ctrl-C again) stops at once: its default, KeyboardInterrupt, exit
        # 130. A second SIGTERM, a process manager repeating itself, must not cut the drain.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        for observer in events:
            observer.stopping()
        loop.add_signal_handler(signal.SIGTERM, log.info, "SIGTERM again: still stopping")
        for watcher in watchers:
            watcher.stop()
        log.info("stopping: finishing in-flight requests (at most %g s)", graceful_timeout)
        try:
            await server.aclose(graceful_timeout)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
        log.info("stopped")


def _reload(
    started: list[Server],
    watchers: list[CertificateWatcher],
    events: Sequence[ProcessEvents] = (),
) -> None:
    for observer in events:
        observer.reloading()
    ok = _reload_certificate(started, watchers)
    for observer in events:
        observer.reloaded(ok)


def _reload_certificate(started: list[Server], watchers: list[CertificateWatcher]) -> bool:
    if not started:
        log.info("SIGHUP while starting: nothing to reload yet")
        return True
    server = started[0]
    if server.certificates is None:
        log.info("SIGHUP: nothing to reload (plain HTTP, no certificate); still serving")
        return True
    try:
        server.reload_certificate()
    except FrameworkError:
        return False  # logged by the server; the old certificate stays in force
    for watcher in watchers:
        watcher.reloaded()
    return True


def _configure_logging(
    level: str | None, log_config: str | None = None, log_format: accesslog.LogFormat = "text"
) -> None:
    logger = logging.getLogger("framework")
    if log_config is not None:
        from .logconfig import load_log_config

        load_log_config(log_config)  # its handlers and levels, unless --log-level is given
        if level is None:
            return
    elif logger.handlers:
        return
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(accesslog.LINE_FORMAT))
        logger.addHandler(handler)
        accesslog.install(sys.stderr, log_format)
    level = level or "info"
    try:
        logger.setLevel(level.upper())
    except ValueError as exc:
        raise FrameworkError(
            f"unknown log level {level!r}; use debug, info, warning or error"
        ) from exc
