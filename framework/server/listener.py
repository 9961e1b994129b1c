"""``Server``: listens, accepts, sweeps timeouts, reloads certificates and drains.

The server binds its sockets (or takes one already bound), runs the startup hooks, then
accepts connections, each a ``ServerProtocol`` sharing one ``ServerContext``. Once a second it
refreshes the ``Date`` clock and expires connections past their phase's deadline. On
``aclose()`` it stops accepting, lets requests in flight finish within a bound, and runs the
shutdown hooks. The handler is any ``async (Request) -> Response`` callable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from ssl import SSLContext  # the name, since Server() has a parameter called ssl
from typing import Any

from .. import limits
from ..messages import Handler, Hook
from ..tls import CertificateStore, report_refused_handshakes
from .config import ServerConfig
from .protocol import ServerContext, ServerProtocol
from .respond import Clock

__all__ = ["Server"]

log = logging.getLogger("framework.server")


class Server:
    """An HTTPS (or, when asked, plain HTTP) server for one handler.

    Args:
        handler: ``async (Request) -> Response``; an ``App`` is one.
        host: the address to listen on.
        port: the port; 0 picks a free one (see ``port`` after ``start()``).
        ssl: a ``CertificateStore``, an ``ssl.SSLContext``, or ``None`` for plain HTTP.
        sock: listen on this already-bound socket instead of ``host``/``port``.
        startup: hooks awaited before the first request is accepted.
        shutdown: hooks awaited after the last response.
        config: limits and timeouts (``ServerConfig``).
        access_log, keep_alive_timeout, head_timeout, max_header_bytes, backlog: set that
            field of ``config``.

    Example::

        async with Server(app, port=0, ssl=CertificateStore("c.pem", "k.pem")) as server:
            print(server.port)
            await server.serve_forever()
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 8443,
        ssl: CertificateStore | ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        startup: Iterable[Hook] = (),
        shutdown: Iterable[Hook] = (),
        config: ServerConfig | None = None,
        **settings: Any,
    ) -> None:
        config = config or ServerConfig()
        if settings:
            try:
                config = dataclasses.replace(config, **settings)
            except TypeError:
                known = {f.name for f in dataclasses.fields(ServerConfig)}
                unknown = ", ".join(sorted(set(settings) - known))
                raise TypeError(
                    f"Server() got unexpected keyword argument(s) {unknown}; the settings are "
                    f"those of ServerConfig: {', '.join(sorted(known))}"
                ) from None
        self.handler = handler
        self.host = host
        self._port = port
        self.sock = sock
        self.config = config
        if isinstance(ssl, CertificateStore):
            self.certificates: CertificateStore | None = ssl
            self.ssl_context: SSLContext | None = ssl.context
        else:
            self.certificates = None
            self.ssl_context = ssl
        self.startup_hooks = list(startup)
        self.shutdown_hooks = list(shutdown)
        self._context: ServerContext | None = None
        self._draining = False
        self._servers: list[asyncio.Server] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._closed: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set in start()

    @property
    def is_tls(self) -> bool:
        """True when the server speaks HTTPS."""
        return self.ssl_context is not None

    @property
    def connections(self) -> set[ServerProtocol]:
        """The open connections."""
        return self._context.connections if self._context is not None else set()

    @property
    def is_draining(self) -> bool:
        """True once ``aclose()`` began: no new connections, open ones close after a response."""
        return self._draining

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [s for server in self._servers for s in server.sockets]

    @property
    def port(self) -> int:
        """The port listened on (useful after asking for port 0)."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        """The base URL, with ``localhost`` for loopback addresses."""
        scheme = "https" if self.is_tls else "http"
        host = self.host if isinstance(self.host, str) else self.host[0]
        if host in ("127.0.0.1", "::1", "0.0.0.0", "::", ""):
            host = "localhost"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        """Bind, run the startup hooks, then accept connections.

        Binding comes first so that a busy port fails before any hook has run (and there is
        no startup without its shutdown). No connection is accepted before the hooks are
        done: they are refused, or queue when ``sock`` was already listening.

        Raises:
            OSError: the address could not be bound (port in use, address not available).
        """
        self.loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        config = self.config
        context = self._context = ServerContext(self.handler, config, self.loop, self.is_tls)
        kwargs: dict[str, Any] = {
            "ssl": self.ssl_context,
            "backlog": config.backlog,
            "start_serving": False,
        }
        if self.ssl_context is not None:
            kwargs["ssl_handshake_timeout"] = config.tls_handshake_timeout
            report_refused_handshakes(self.ssl_context, log)
        if self.sock is not None:
            kwargs["sock"] = self.sock
        else:
            kwargs.update(host=self.host, port=self._port, reuse_address=True)
        server = await self.loop.create_server(lambda: ServerProtocol(context), **kwargs)
        try:
            for hook in self.startup_hooks:
                await hook()
        except BaseException:
            server.close()
            raise
        self._servers.append(server)
        await server.start_serving()
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        self._ticker = self.loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        """Once a second: refresh the Date header, close idle and too-slow connections."""
        Clock.tick()
        context = self._context
        assert context is not None
        context.deadlines.sweep(context.connections)
        self._schedule_tick()

    def reload_certificate(
        self,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        """Switch new handshakes to a new certificate; open connections carry on.

        The new files are checked first (key matches, chain order, not expired); when they
        fail, the old certificate stays and the error is logged and raised.

        Raises:
            CertificateError: the new files were refused.
            RuntimeError: the server was not started with a ``CertificateStore``.
        """
        if self.certificates is None:
            raise RuntimeError("reload_certificate needs a server started with a CertificateStore")
        try:
            self.certificates.reload(certfile, keyfile)
        except Exception as exc:
            log.error("certificate reload refused, keeping the old one: %s", exc)
            raise

    async def serve_forever(self) -> None:
        """Serve until ``aclose()`` is called (or the task is cancelled)."""
        assert self._closed is not None, "call start() first"
        await self._closed.wait()

    # ``timeout`` bounds the drain, not the call: a caller's own deadline would cut the
    # shutdown hooks short too.
    async def aclose(self, timeout: float = limits.GRACEFUL_SHUTDOWN_TIMEOUT) -> None:  # noqa: ASYNC109
        """Stop accepting, let in-flight requests finish (up to ``timeout``), run shutdown hooks."""
        if self._draining:
            return
        self._draining = True
        context = self._context
        connections = context.connections if context is not None else set()
        if context is not None:
            context.is_draining = True
        for server in self._servers:
            server.close()
        for conn in list(connections):
            conn.shutdown()
        running = {c: c.task for c in connections if c.task is not None}
        if running:
            _, pending = await asyncio.wait(running.values(), timeout=timeout)
            for conn, task in running.items():
                if task in pending:
                    log.warning(
                        "closing %s: request still running after %.0f s", conn.client, timeout
                    )
                    task.cancel()
                    conn.abort()
        for server in self._servers:
            await server.wait_closed()
        if self._ticker is not None:
            self._ticker.cancel()
        for hook in self.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)
        if self._closed is not None:
            self._closed.set()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "draining" if self.is_draining else ("listening" if self._servers else "new")
        return f"<Server {self.url} {state} connections={len(self.connections)}>"
