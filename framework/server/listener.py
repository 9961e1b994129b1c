"""``Server``: listens, accepts, sweeps timeouts, reloads certificates and drains.

The server binds its sockets (or takes one already bound), runs the startup hooks, then
accepts connections, each a ``ServerProtocol`` sharing one ``ServerContext``. It accepts
itself (``sock_accept``, then ``connect_accepted_socket`` for the TLS handshake) so that it can
stop accepting at ``max_connections`` (connections in their handshake count) and go on below
it: the ones above wait in the kernel's backlog, as under nginx's worker_connections, rather
than being refused. Once a second (more often for timeouts under two seconds) it refreshes the
``Date`` clock and expires connections past their phase's deadline. On ``aclose()`` it stops
accepting, serves the connections already in the backlog, answers every request that has
arrived (with ``Connection: close``), closes idle connections, cuts what still runs after the
graceful timeout, and runs the shutdown hooks. The handler is any ``async (Request) ->
Response`` callable.
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
        sockets: listen on all of these already-bound sockets (TCP or Unix) instead.
        startup: hooks awaited before the first request is accepted.
        shutdown: hooks awaited after the last response.
        config: limits and timeouts (``ServerConfig``).
        access_log, keep_alive_timeout, head_timeout, max_header_bytes, backlog: set that
            field of ``config``; so does any other field of ``ServerConfig``
            (``forwarded_allow_ips="10.0.0.0/8"``, ``access_log_format="json"``).

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
        sockets: Sequence[socket.socket] = (),
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
        self._given = [sock] if sock is not None else list(sockets)
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
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()
        #: Connections accepted and not yet closed (in their handshake or open).
        self.open_connections = 0
        self._room: asyncio.Event | None = None
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
        return list(self._listeners)

    @property
    def requests_served(self) -> int:
        """Requests received since the server started."""
        return self._context.requests_served if self._context is not None else 0

    @property
    def port(self) -> int:
        """The port listened on (useful after asking for port 0)."""
        for sock in self.sockets:
            if sock.family != socket.AF_UNIX:
                return int(sock.getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        """The base URL, with ``localhost`` for loopback addresses."""
        scheme = "https" if self.is_tls else "http"
        host = self.host if isinstance(self.host, str) else self.host[0]
        tcp = [s for s in self._listeners if s.family != socket.AF_UNIX]
        if self._given and tcp:  # sockets made elsewhere: where they listen is the truth
            host = str(tcp[0].getsockname()[0])
        if host in ("127.0.0.1", "::1", "0.0.0.0", "::", ""):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
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
        self._room = asyncio.Event()
        config = self.config
        context = self._context = ServerContext(self.handler, config, self.loop, self.is_tls)
        context.on_close = self._released
        if self.ssl_context is not None:
            report_refused_handshakes(self.ssl_context, log)
        sockets = self._given or await self._bind()
        try:
            for hook in self.startup_hooks:
                await hook()
        except BaseException:
            if not self._given:
                for sock in sockets:
                    sock.close()
            raise
        for sock in sockets:
            sock.setblocking(False)
            sock.listen(config.backlog)
            self._listeners.append(sock)
            if self._port == 0 and sock.family != socket.AF_UNIX:
                self._port = int(sock.getsockname()[1])
            self._accepting.append(self.loop.create_task(self._accept(sock)))
        self._schedule_tick()

    async def _bind(self) -> list[socket.socket]:
        """Sockets bound to every address of ``host`` (not listening yet)."""
        hosts = [self.host] if isinstance(self.host, str) else list(self.host)
        sockets: list[socket.socket] = []
        try:
            for host in hosts:
                infos = await self.loop.getaddrinfo(
                    host or None,
                    self._port,
                    type=socket.SOCK_STREAM,
                    flags=socket.AI_PASSIVE,
                )
                for family, kind, proto, _, address in dict.fromkeys(infos):
                    sock = socket.socket(family, kind, proto)
                    sockets.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    try:
                        sock.bind(address)
                    except OSError as exc:
                        raise OSError(
                            exc.errno,
                            f"error while attempting to bind on address {address!r}: "
                            f"{exc.strerror}",
                        ) from None
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets

    async def _accept(self, listener: socket.socket) -> None:
        """Accept connections on ``listener`` while there is room under ``max_connections``."""
        loop = self.loop
        config = self.config
        room = self._room
        assert room is not None
        assert self._context is not None
        context = self._context
        while True:
            while self.open_connections >= config.max_connections:
                # Full: leave the next connections in the kernel's backlog until one closes.
                room.clear()
                await room.wait()
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:  # out of file descriptors, or the like: try again soon
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)  # noqa: ASYNC110 - a back-off, not a synchronisation
                continue
            self.open_connections += 1
            task = loop.create_task(self._connect(sock, context))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _connect(self, sock: socket.socket, context: ServerContext) -> None:
        """The TLS handshake (within ``tls_handshake_timeout``), then the connection runs."""
        try:
            await self.loop.connect_accepted_socket(
                lambda: ServerProtocol(context),
                sock,
                ssl=self.ssl_context,
                ssl_handshake_timeout=(
                    self.config.tls_handshake_timeout if self.ssl_context is not None else None
                ),
            )
        except (Exception, asyncio.CancelledError) as exc:
            # A handshake that failed or timed out: the peer's doing. A refused handshake was
            # already reported (tls.report_refused_handshakes); anything else is one DEBUG line.
            if not isinstance(exc, ssl.SSLError):
                log.debug("connection not established: %s", exc or type(exc).__name__)
            sock.close()
            self._released()
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _released(self) -> None:
        """A connection ended: there is room for another."""
        self.open_connections -= 1
        room = self._room
        if room is not None and not room.is_set():
            room.set()

    def _schedule_tick(self) -> None:
        interval = self._context.deadlines.interval if self._context is not None else 1.0
        self._ticker = self.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        """Refresh the Date header, close idle and too-slow connections."""
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
        """Stop accepting, answer what was sent, finish in-flight requests, run shutdown hooks.

        Connections already in the listening socket's backlog are accepted and served before
        the socket closes; a request that has begun to arrive, or that may be on its way on a
        connection answered a moment ago (``limits.DRAIN_IDLE_GRACE``), is answered with
        ``Connection: close``; idle connections close at once. What is still running after
        ``timeout`` seconds is cancelled and its connection cut.
        """
        if self._draining:
            return
        self._draining = True
        context = self._context
        if context is None:  # never started
            return
        deadline = self.loop.time() + timeout
        context.is_draining = True
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        # No await from here to the close: a connection completed by the kernel after the
        # last accept and before the close is the only one refused (reset), a microsecond's
        # window rather than the whole backlog.
        for sock in self._listeners:
            self._accept_backlog(sock, context)
            sock.close()
        self._listeners.clear()
        for conn in list(context.connections):
            conn.shutdown(limits.DRAIN_IDLE_GRACE)
        # Connections handed to another protocol (WebSockets) are told the server is going
        # away (1001) and waited for with the requests in flight.
        upgraded = list(context.upgraded)
        for protocol in upgraded:
            protocol.going_away()
        # Polled, every 10 ms up to the deadline: "closed by us" has no event of its own.
        linger_until: float | None = None
        while self._handshakes or self.connections or _open(upgraded):
            now = self.loop.time()
            if now >= deadline:
                self._cut(timeout)
                for protocol in _open(upgraded):
                    protocol.abort()
                break
            if self._all_closed_by_us() and not _open(upgraded):
                # Each connection has its last answer and a close_notify on the way; the
                # client closes once it has read them. One that does not, within the linger,
                # is not waited for: it would hold the stop for nothing.
                if linger_until is None:
                    linger_until = now + limits.DRAIN_LINGER
                elif now >= linger_until:
                    break
            await asyncio.sleep(0.01)  # noqa: ASYNC110 - a bounded poll of the connections
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
        for hook in self.shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %r failed", hook)
        if self._closed is not None:
            self._closed.set()

    def _accept_backlog(self, listener: socket.socket, context: ServerContext) -> None:
        """Accept every connection waiting in ``listener``'s backlog, to be served.

        Past ``max_connections`` too: the backlog is bounded, and refusing those connections
        now would reset them.
        """
        for _ in range(max(self.config.backlog, 1) * 2):  # the backlog's size bounds it
            try:
                sock, _ = listener.accept()
                sock.setblocking(False)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed while stopping: %s", exc)
                return
            self.open_connections += 1
            task = self.loop.create_task(self._connect(sock, context))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _all_closed_by_us(self) -> bool:
        """No handshake running, and every connection closed (by us) with nothing unsent."""
        if self._handshakes:
            return False
        for conn in self.connections:
            transport = conn.transport
            if not conn.is_closed or (transport is not None and transport.get_write_buffer_size()):
                return False
        return True

    def _cut(self, timeout: float) -> None:
        """The graceful timeout passed: cancel what is left and cut its connections."""
        for task in list(self._handshakes):
            task.cancel()
        for conn in list(self.connections):
            running = conn.task
            if running is not None:
                log.warning("closing %s: request still running after %g s", conn.client, timeout)
                running.cancel()
            conn.abort()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "draining" if self.is_draining else ("listening" if self._listeners else "new")
        return f"<Server {self.url} {state} connections={len(self.connections)}>"


def _open(upgraded: list[Any]) -> list[Any]:
    """The handed-over protocols (WebSockets) not closed yet."""
    return [protocol for protocol in upgraded if not protocol.closed.done()]
