"""Test your app over real HTTPS: a throwaway CA, the app on a loopback port, a client for it.

``async with serve_app(app) as server:`` serves ``app`` (an ``App``, a handler, or an ASGI app)
on ``127.0.0.1`` and a free port with a certificate from a throwaway CA, runs its startup hooks
(or ASGI lifespan) before the block and its shutdown hooks after, and ``server.client()`` is a
``Client`` that trusts that CA alone. Nothing is skipped: TLS, HTTP/1.1 framing, streaming,
limits and lifespan are those of production. ``serve_app_in_thread`` does the same from
synchronous code (the server runs on its own loop in a thread); the pytest plugin
(``framework.pytest_plugin``) builds its fixtures on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from .asgi import as_handler, interface_of
from .client import Client
from .deploy import start_server
from .deploy.run import StartupFailed
from .pki import CertificateAuthority
from .server import Server, ServerConfig
from .tls import ClientCertMode

__all__ = [
    "CertificateFiles",
    "LoopThread",
    "ServedApp",
    "ThrowawayCA",
    "eventually",
    "serve_app",
    "serve_app_in_thread",
]

T = TypeVar("T")

#: The names a server certificate from ``ThrowawayCA.server_certificate`` covers by default.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate chain (leaf first) and its private key, as PEM files."""

    cert: Path
    key: Path


class ThrowawayCA:
    """A CA for tests, in a temporary directory removed by ``close()``: ECDSA P-256, fast.

    It is never the development CA (``framework certs`` / ``App.run``), and nothing outside
    the test trusts it. Certificates are issued once per name set and reused.

    Attributes:
        authority: the ``CertificateAuthority`` itself, for issuing anything else.
        cert_path: the CA certificate (PEM), what clients trust (``curl --cacert``).
        directory: where its files are kept.
    """

    __test__ = False  # imported into test modules, never collected as a test class

    def __init__(self, name: str = "framework throwaway test CA") -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="framework-test-ca-"))
        try:
            self.authority = CertificateAuthority.create(self.directory / "ca", name=name)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.cert_path = self.authority.trust_path
        self._issued: dict[tuple[str, bool], CertificateFiles] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ThrowawayCA {self.directory}>"

    def server_certificate(self, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> CertificateFiles:
        """A server certificate for ``hosts`` (``localhost``, ``127.0.0.1``, ``::1``)."""
        return self._issue(hosts, client=False)

    def client_certificate(self, name: str = "test-client") -> CertificateFiles:
        """A client certificate (clientAuth) with common name ``name``, for mutual TLS."""
        return self._issue((name,), client=True)

    def _issue(self, hosts: tuple[str, ...], *, client: bool) -> CertificateFiles:
        with self._lock:  # fixtures in threads may ask at once
            key = (",".join(hosts), client)
            if key not in self._issued:
                stem = f"{'client' if client else 'server'}-{len(self._issued)}"
                files = CertificateFiles(
                    self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
                )
                self.authority.issue(list(hosts), client=client).write(files.cert, files.key)
                self._issued[key] = files
            return self._issued[key]

    def close(self) -> None:
        """Remove the CA's directory and everything issued in it."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ThrowawayCA:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ErrorLog(logging.Handler):
    """Keeps the ERROR records of the ``framework`` loggers: a handler's exception among them."""

    def __init__(self, thread: int | None) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self._thread = thread

    def emit(self, record: logging.LogRecord) -> None:
        if self._thread is None or record.thread == self._thread:
            self.records.append(record)


class ServedApp:
    """An app being served for a test: where it is, which CA to trust, what went wrong.

    Attributes:
        server: the running ``Server``.
        url: its base URL (``https://127.0.0.1:PORT``).
        port: the port it listens on.
        ca: the CA certificate (PEM file) the server's certificate chains to.
        client_cert: the client certificate ``client()`` presents when the server asks for
            one (``client_cert=`` of ``serve_app``), else ``None``.
        errors: the ERROR records logged by the ``framework`` loggers while it ran (an
            exception in a handler is one: its ``exc_info`` holds the exception).
    """

    def __init__(
        self, server: Server, ca: Path, client_cert: CertificateFiles | None, log: _ErrorLog
    ) -> None:
        self.server = server
        self.port = server.port
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = ca
        self.client_cert = client_cert
        self._log = log

    def __repr__(self) -> str:
        return f"<ServedApp {self.url}>"

    @property
    def errors(self) -> list[logging.LogRecord]:
        """The ERROR records logged so far (a snapshot)."""
        return list(self._log.records)

    @property
    def exceptions(self) -> list[BaseException]:
        """The exceptions among ``errors`` (a handler's unhandled exception, for one)."""
        return [r.exc_info[1] for r in self._log.records if r.exc_info and r.exc_info[1]]

    def client(self, *, cert: bool = True, **options: Any) -> Client:
        """A ``Client`` with ``base_url=url`` that trusts ``ca`` alone.

        It presents ``client_cert`` when there is one, unless ``cert=False`` (to test a
        refusal). ``options`` go to ``Client`` (``timeout=``, ``headers=``, ...); use it with
        ``async with``.
        """
        if cert and self.client_cert is not None:
            options.setdefault("cert", self.client_cert.cert)
            options.setdefault("key", self.client_cert.key)
        options.setdefault("ca", self.ca)
        return Client(self.url, **options)


def _config(config: ServerConfig | None, limits: dict[str, Any]) -> ServerConfig:
    config = config or ServerConfig()
    try:
        return dataclasses.replace(config, **limits)
    except TypeError:
        known = {f.name for f in dataclasses.fields(ServerConfig)}
        unknown = ", ".join(sorted(set(limits) - known))
        raise TypeError(
            f"serve_app() got unknown setting(s) {unknown}; the limits are the fields of "
            f"ServerConfig: {', '.join(sorted(known))}"
        ) from None


@asynccontextmanager
async def serve_app(
    app: Any,
    *,
    ca: ThrowawayCA | None = None,
    client_cert: ClientCertMode | None = None,
    config: ServerConfig | None = None,
    interface: Literal["auto", "asgi", "native"] = "auto",
    lifespan: Literal["auto", "on", "off"] = "auto",
    access_log: bool = False,
    **limits: Any,
) -> AsyncIterator[ServedApp]:
    """Serve ``app`` over HTTPS on ``127.0.0.1`` and a free port for the ``async with`` block.

    Startup hooks (an ASGI app's lifespan startup) run before the block, shutdown hooks after
    it, once requests in flight are done. A failing startup hook raises here.

    Args:
        app: an ``App``, any ``async (Request) -> Response`` handler, or an ASGI 3 app.
        ca: the CA to issue the server's certificate from (reuse one across tests for
            speed); a new ``ThrowawayCA``, removed afterwards, when omitted.
        client_cert: ``"required"`` or ``"optional"``: mutual TLS, trusting client
            certificates from the same CA; ``server.client()`` presents one.
        config: the server's limits and timeouts; ``limits`` (``max_body_bytes=10``, any
            field of ``ServerConfig``) replace fields of it.
        interface, lifespan: as ``framework serve --interface/--lifespan``, for apps whose
            kind cannot be told from their signature and ASGI apps without lifespan.
        access_log: log one line per request to ``framework.access``.

    Raises:
        TypeError: ``app`` is neither kind that ``interface="auto"`` can tell, or a limit is
            not a field of ``ServerConfig``.
    """
    server_config = _config(config, limits)
    if interface == "auto" and interface_of(app) is None:
        raise TypeError(
            f"cannot tell whether {app!r} is an ASGI app (async (scope, receive, send)) or a "
            "handler (async (request)); pass interface='asgi' or interface='native'"
        )
    handler = as_handler(app, interface, lifespan=lifespan)
    own_ca = ca is None
    authority = ThrowawayCA() if ca is None else ca
    in_thread = threading.current_thread()
    log = _ErrorLog(None if in_thread is threading.main_thread() else in_thread.ident)
    framework_log = logging.getLogger("framework")
    framework_log.addHandler(log)
    try:
        certificate = authority.server_certificate()
        try:
            server = await start_server(
                handler,
                config=server_config,
                host="127.0.0.1",
                port=0,
                certfile=str(certificate.cert),
                keyfile=str(certificate.key),
                client_ca=str(authority.cert_path) if client_cert else None,
                client_cert=client_cert or "required",
                access_log=access_log,
            )
        except StartupFailed as exc:
            # A test wants its own startup hook's exception, not the command line's summary.
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise
        try:
            mtls = authority.client_certificate() if client_cert else None
            yield ServedApp(server, authority.cert_path, mtls, log)
        finally:
            await server.aclose()
    finally:
        framework_log.removeHandler(log)
        if own_ca:
            authority.close()


async def eventually(
    predicate: Callable[[], object], *, within: float = 5.0, interval: float = 0.01
) -> None:
    """Wait until ``predicate()`` is true, checking every ``interval`` seconds.

    For what the server does after the response, on its own schedule (a generator closed on
    disconnect, a shutdown hook, a connection closed), without a fixed sleep.

    Raises:
        TimeoutError: still false after ``within`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"{predicate!r} was still false after {within:g} s")
        await asyncio.sleep(interval)


class LoopThread:
    """An event loop running in a thread of its own, to serve while synchronous code runs.

    ``run(coro)`` runs a coroutine there and returns its result (or raises its exception);
    ``close()`` cancels what is left, closes the loop and joins the thread.

    Args:
        loop_factory: makes the loop (``asyncio.new_event_loop`` when omitted;
            ``framework.deploy.new_event_loop`` for uvloop's).
        name: the thread's name.
    """

    def __init__(
        self,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        *,
        name: str = "framework-test-server",
    ) -> None:
        self._factory = loop_factory or asyncio.new_event_loop
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the test server's event loop did not start within 30 s")
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        async def park() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

        try:
            with asyncio.Runner(loop_factory=self._factory) as runner:
                runner.run(park())
        except BaseException as exc:  # handed to the thread that started this one
            self._error = exc
            self._ready.set()

    def run(self, coro: Awaitable[T], timeout: float = 60) -> T:
        """Run ``coro`` on this loop; wait at most ``timeout`` seconds for its result."""
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("the LoopThread is closed")

        async def call() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def close(self, timeout: float = 30) -> None:
        """Stop the loop (cancelling tasks still running on it) and join the thread."""
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"the test server's thread did not stop within {timeout} s")

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextmanager
def serve_app_in_thread(
    app: Any,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    **options: Any,
) -> Iterator[ServedApp]:
    """``serve_app`` for synchronous code: the server runs on an event loop in a thread.

    Use it from plain test functions (with ``asyncio.run`` inside, blocking clients, or
    ``curl``), or under any async test runner; ``options`` are those of ``serve_app``.
    """
    with LoopThread(loop_factory) as loop:
        context = serve_app(app, **options)
        served = loop.run(context.__aenter__())
        exc_info: tuple[Any, Any, Any] = (None, None, None)
        try:
            yield served
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            raise
        finally:
            loop.run(_exit(context, exc_info))


async def _exit(
    context: Any,
    exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None],
) -> None:
    await context.__aexit__(*exc_info)
