"""The HTTPS server: one asyncio ``Protocol`` per connection over the loop's TLS transport.

``ServerProtocol`` feeds received bytes to a server-role ``Driver``, turns h11 events into
``Request`` objects, runs the handler, and writes the ``Response`` with back pressure; it owns
keep-alive, pipelining, 100-continue and the answers to malformed input. ``Server`` listens,
sweeps idle connections, reloads certificates and drains on shutdown. The handler is any
``async (Request) -> Response`` callable: routing and applications live above this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from email.utils import formatdate
from ssl import SSLContext  # the name, since Server() has a parameter called ssl
from typing import Any

from . import limits
from .accesslog import log_request
from .errors import LocalProtocolError, ProtocolError
from .http11 import (
    IDLE,
    NEED_DATA,
    PAUSED,
    SEND_RESPONSE,
    ConnectionClosed,
    Data,
    Driver,
    EndOfMessage,
    InformationalResponse,
    reason_phrase,
)
from .http11 import Request as RequestHead
from .http11 import Response as ResponseHead
from .messages import Headers, Request, Response, TLSInfo
from .tls import CertificateStore, tls_info
from .transport import BodyQueue, FlowControl

__all__ = ["Handler", "Server", "ServerProtocol"]

Handler = Callable[[Request], Awaitable[Response]]
Hook = Callable[[], Awaitable[None]]

log = logging.getLogger("framework.server")

SERVER_HEADER = (b"server", b"framework")
# In-memory bodies up to this size go out with their head in one write (copied once to join
# them); larger ones are written as they are, in pieces of WRITE_CHUNK_BYTES (_send_stream).
_WHOLE_WRITE_MAX = 64 * 1024
_END = EndOfMessage()


class _Clock:
    """The ``Date`` header value, formatted once a second rather than per response."""

    value: bytes = formatdate(usegmt=True).encode("ascii")

    @classmethod
    def tick(cls) -> None:
        cls.value = formatdate(usegmt=True).encode("ascii")


class ServerProtocol(asyncio.Protocol):
    """One client connection: HTTP/1.1 over the transport, one request at a time."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.driver = Driver("server", server.max_header_bytes)
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl = None  # type: ignore[assignment]  # set in connection_made
        self.client: tuple[str, int] | None = None
        self.is_closed = False
        self._tls: TLSInfo | None = None
        self._tls_done = False
        self._task: asyncio.Task[None] | None = None
        self._body: BodyQueue | None = None
        self._continue_sent = False
        self._closing = False  # finish the current response, then close
        #: loop time since when the connection has waited for a request (None while busy).
        self.idle_since: float | None = None
        self.requests = 0

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=limits.WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self.flow = FlowControl(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (peer[0], peer[1])
        self.idle_since = self.server.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.is_closed:  # closing after a last response: what follows is not read
            return
        try:
            self.driver.receive_data(data)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        if self._task is None:
            self._process()
        elif self._body is not None and not self._body.is_complete:
            self._process_body()
        else:
            # A pipelined request arrived while the previous one is being answered: h11 holds
            # it; stop reading so a client cannot queue requests without bound.
            self.flow.pause_reading()

    def eof_received(self) -> bool | None:
        try:
            self.driver.receive_data(b"")
        except ProtocolError:
            pass
        if self._task is None:
            self._close()
        else:
            self._process_body()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.is_closed = True
        self.flow.connection_lost(exc)
        if self._body is not None:
            self._body.lose("client disconnected before sending the whole body")
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # --- reading ----------------------------------------------------------------------------

    def _process(self) -> None:
        """Handle received events until a request starts or more data is needed."""
        driver = self.driver
        try:
            event = driver.next_event()
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        if event is NEED_DATA:
            if driver.trailing_data[0] and self.idle_since is not None:
                # Part of a request head has arrived: the head timeout applies from now.
                self.idle_since = None
                self.server.head_started[self] = self.server.loop.time()
            return
        if event is PAUSED:  # pragma: no cover - only reached between cycles, never here
            return
        if type(event) is RequestHead:
            self._start_request(event)
        elif type(event) is ConnectionClosed:
            self._close()
        else:
            # Nothing else can start a cycle; h11 raises for anything else.
            self._close()  # pragma: no cover

    def _process_body(self) -> None:
        """Pass received body events to the request being handled."""
        body = self._body
        driver = self.driver
        while body is not None and not body.is_complete:
            try:
                event = driver.next_event()
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if type(event) is Data:
                body.feed(event.data)
            elif type(event) is EndOfMessage:
                body.finish()
            elif event is NEED_DATA or event is PAUSED:
                return
            else:  # ConnectionClosed mid-body
                body.finish()
                self._closing = True
                return

    def _start_request(self, event: RequestHead) -> None:
        server = self.server
        self.idle_since = None
        server.head_started.pop(self, None)
        self.requests += 1
        if not self._tls_done:
            self._tls_done = True
            if server.is_tls:
                self._tls = tls_info(self.transport.get_extra_info("ssl_object"))  # type: ignore[union-attr]
        body = self._body = BodyQueue(self.flow, self.send_continue)
        self._continue_sent = False
        request = Request(
            event.method.decode("ascii"),
            event.target,
            Headers.from_raw(event.headers),
            body=body,
            client=self.client,
            tls=self._tls,
            http_version=event.http_version.decode("ascii"),
        )
        self._process_body()
        self._task = server.loop.create_task(self._respond(request))

    def send_continue(self) -> None:
        """Send ``100 Continue`` once, if the client is waiting for it."""
        if not self._continue_sent and self.driver.they_are_waiting_for_100_continue:
            self._continue_sent = True
            self._write(self.driver.send(InformationalResponse(100, [])))

    # --- writing ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.is_closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def _response_headers(self, response: Response) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The headers to send, and whether the handler framed the body itself.

        ``Date``, ``Server`` and ``Connection: close`` are added where due; ``Content-Length``
        is left to the writer.
        """
        headers = response.headers.raw
        names = {name for name, _ in headers}
        extra = []
        if b"date" not in names:
            extra.append((b"date", _Clock.value))
        if b"server" not in names:
            extra.append(SERVER_HEADER)
        if self._closing or not self._body or not self._body.is_complete or self.server.is_draining:
            # The request body was not all read (so the connection cannot be reused), or the
            # server is shutting down: say so, and close after this response.
            self._closing = True
            extra.append((b"connection", b"close"))
        framed = b"content-length" in names or b"transfer-encoding" in names
        return (headers + extra if extra else headers), framed

    async def _respond(self, request: Request) -> None:
        status = 500
        try:
            try:
                response = await self.server.handler(request)
                if not isinstance(response, Response):
                    raise TypeError(
                        f"handler returned {type(response).__name__}, expected a Response"
                    )
            except Exception:
                log.exception("unhandled error in handler for %s %s", request.method, request.path)
                response = Response("Internal Server Error", status=500)
            if self.is_closed:
                return
            if response.body_iterator is None and len(response.body) <= _WHOLE_WRITE_MAX:
                status = self._send_whole(request, response)
            else:
                status = await self._send_stream(request, response)
        except (ConnectionError, ProtocolError) as exc:
            log.debug("connection ended while responding: %r", exc)
            self._abort()
        except Exception:
            # The body iterator failed after the head was sent: the response cannot be
            # finished, so cut the connection (a truncated body) rather than leave it hanging.
            log.exception(
                "error while sending the response to %s %s", request.method, request.path
            )
            self._abort()
        finally:
            self._task = None
        if self.server.access_log:
            log_request(self.client, request.method, request.url, request.http_version, status)
        self._end_cycle()

    def _send_whole(self, request: Request, response: Response) -> int:
        """Write a small response whose body is in memory; return the status sent."""
        headers, framed = self._response_headers(response)
        if framed:
            # The handler set Content-Length or Transfer-Encoding itself: h11 checks it.
            return self._send_head_and_body(request, response, headers)
        try:
            head = ResponseHead(response.status, headers)
            data = self.driver.send_whole(head, response.body)
        except LocalProtocolError as exc:
            return self._send_error_instead(request, exc)
        self._write(data)
        return response.status

    def _send_head_and_body(
        self, request: Request, response: Response, headers: list[tuple[bytes, bytes]]
    ) -> int:
        driver = self.driver
        head = ResponseHead(response.status, headers, response.reason.encode("latin-1"))
        try:
            data = driver.send(head)
        except LocalProtocolError as exc:
            return self._send_error_instead(request, exc)
        if response.body and request.method != "HEAD":
            data += driver.send(Data(response.body))
        self._write(data + driver.send(_END))
        return response.status

    def _send_error_instead(self, request: Request, exc: Exception) -> int:
        # The handler's status or headers are not valid HTTP (CR/LF in a value, a bad name),
        # found before anything was written: answer 500 rather than leave the client waiting.
        if self.driver.our_state is not SEND_RESPONSE:
            raise exc  # no response can be sent any more: the connection is cut
        log.error("invalid response for %s %s: %s", request.method, request.path, exc)
        return self._send_whole(request, Response("Internal Server Error", status=500))

    async def _send_stream(self, request: Request, response: Response) -> int:
        """Write a response in pieces, waiting for the client between them; return the status.

        The pieces come from the body iterator, or are slices of a large in-memory body, so
        that no more than a piece waits in the transport, encrypted, at a time.
        """
        driver = self.driver
        iterator = response.body_iterator
        headers, framed = self._response_headers(response)
        if iterator is None and not framed:
            headers = [*headers, (b"content-length", b"%d" % len(response.body))]
        head = ResponseHead(response.status, headers, response.reason.encode("latin-1"))
        try:
            self._write(driver.send(head))
        except LocalProtocolError as exc:
            if iterator is not None and hasattr(iterator, "aclose"):
                await iterator.aclose()
            return self._send_error_instead(request, exc)
        flow = self.flow
        if iterator is None:
            if request.method != "HEAD":
                body = response.body
                for start in range(0, len(body), limits.WRITE_CHUNK_BYTES):
                    piece = body[start : start + limits.WRITE_CHUNK_BYTES]
                    self._write(driver.send(Data(piece)))
                    await flow.drain()
            self._write(driver.send(_END))
            return response.status
        try:
            if request.method != "HEAD":
                async for chunk in iterator:
                    if chunk:
                        self._write(driver.send(Data(chunk)))
                        # Write back pressure: wait while the client is slower than us.
                        await flow.drain()
            self._write(driver.send(_END))
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        return response.status

    def _end_cycle(self) -> None:
        if self.is_closed:
            return
        driver = self.driver
        if self._closing or not driver.is_reusable:
            self._close()
            return
        driver.start_next_cycle()
        self._body = None
        self.idle_since = self.server.loop.time()
        self.flow.resume_reading()
        # Pipelined requests already received are waiting inside h11.
        self._process()

    # --- errors and closing -----------------------------------------------------------------

    def _protocol_error(self, exc: ProtocolError) -> None:
        """Answer malformed input with h11's status hint, then close cleanly."""
        log.debug("bad request from %s: %s", self.client, exc)
        if self._task is not None:
            # A handler is running for a request whose body turned out malformed: it cannot
            # be answered sensibly any more.
            if self._body is not None:
                self._body.finish()
            self._abort()
            return
        driver = self.driver
        if driver.our_state is IDLE or driver.our_state is SEND_RESPONSE:
            status = exc.status_hint
            body = f"{status} {reason_phrase(status)}\n".encode("ascii")
            headers = [
                (b"date", _Clock.value),
                SERVER_HEADER,
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ]
            try:
                data = driver.send(ResponseHead(status, headers))
                data += driver.send(Data(body)) + driver.send(_END)
                self._write(data)
            except ProtocolError:  # pragma: no cover - h11 refused; nothing more to say
                pass
        self._close()

    def _close(self) -> None:
        if not self.is_closed and self.transport is not None:
            self.is_closed = True
            self.server.head_started.pop(self, None)
            self.transport.close()

    def _abort(self) -> None:
        if self.transport is not None:
            self.is_closed = True
            self.transport.abort()

    def shutdown(self) -> None:
        """Close now if idle; otherwise close after the response in progress."""
        self._closing = True
        if self._task is None:
            self._close()

    def __repr__(self) -> str:
        state = "busy" if self._task is not None else "idle"
        return f"<ServerProtocol {self.client} {state} requests={self.requests}>"


# The loop does the TLS handshake before a ServerProtocol exists, and neither asyncio's nor
# uvloop's SSL protocol reports one that fails (ssl.SSLError is an OSError, which both log only
# in debug mode). The handshake runs through the context's SSLObject class, so a subclass sees
# the failure first: it logs one line and re-raises, and the loop carries on as before. The
# peer's address is not known at that level; the reason is.


class _ReportingSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # not a failure: the handshake waits for the peer
        except ssl.SSLError as exc:
            _log_refused_handshake(exc)
            raise


def _log_refused_handshake(exc: ssl.SSLError) -> None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message
        log.warning("TLS handshake refused: client certificate verify failed: %s", reason)
    elif exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        log.warning("TLS handshake refused: client certificate required (the client sent none)")
    else:
        log.debug("TLS handshake failed: %s", exc.reason or exc)


def _report_refused_handshakes(context: ssl.SSLContext) -> None:
    """Log one line for each handshake ``context`` refuses for want of a good client certificate.

    Only where there is something to say: client certificates are asked for, or debug logging
    is on (other failures are logged at debug level). The subclass costs ~14 us of a new
    connection's ~670 (benchmarks/README.md, new-connection). Leaves a context whose
    ``sslobject_class`` was already replaced as it is.
    """
    if context.verify_mode == ssl.CERT_NONE and not log.isEnabledFor(logging.DEBUG):
        return
    if context.sslobject_class is ssl.SSLObject:
        context.sslobject_class = _ReportingSSLObject


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
        access_log: log one line per request to the ``framework.access`` logger.

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
        access_log: bool = False,
        keep_alive_timeout: float = limits.KEEP_ALIVE_TIMEOUT,
        head_timeout: float = limits.REQUEST_HEAD_TIMEOUT,
        max_header_bytes: int = limits.MAX_HEADER_BYTES,
        backlog: int = limits.BACKLOG,
    ) -> None:
        self.handler = handler
        self.host = host
        self._port = port
        self.sock = sock
        if isinstance(ssl, CertificateStore):
            self.certificates: CertificateStore | None = ssl
            self.ssl_context: SSLContext | None = ssl.context
        else:
            self.certificates = None
            self.ssl_context = ssl
        self.startup_hooks = list(startup)
        self.shutdown_hooks = list(shutdown)
        self.access_log = access_log
        self.keep_alive_timeout = keep_alive_timeout
        self.head_timeout = head_timeout
        self.max_header_bytes = max_header_bytes
        self.backlog = backlog
        self.connections: set[ServerProtocol] = set()
        self.head_started: dict[ServerProtocol, float] = {}
        self.is_draining = False
        self._servers: list[asyncio.Server] = []
        self._ticker: asyncio.TimerHandle | None = None
        self._closed: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set in start()

    @property
    def is_tls(self) -> bool:
        """True when the server speaks HTTPS."""
        return self.ssl_context is not None

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
        kwargs: dict[str, Any] = {
            "ssl": self.ssl_context,
            "backlog": self.backlog,
            "start_serving": False,
        }
        if self.ssl_context is not None:
            kwargs["ssl_handshake_timeout"] = limits.TLS_HANDSHAKE_TIMEOUT
            _report_refused_handshakes(self.ssl_context)
        if self.sock is not None:
            kwargs["sock"] = self.sock
        else:
            kwargs.update(host=self.host, port=self._port, reuse_address=True)
        server = await self.loop.create_server(lambda: ServerProtocol(self), **kwargs)
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
        _Clock.tick()
        now = self.loop.time()
        for conn in list(self.connections):
            if conn.idle_since is not None and now - conn.idle_since > self.keep_alive_timeout:
                conn._close()
        for conn, started in list(self.head_started.items()):
            if now - started > self.head_timeout:
                limit = self.head_timeout
                log.info("closing %s: request head not received in %.0f s", conn.client, limit)
                conn._close()
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
        if self.is_draining:
            return
        self.is_draining = True
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.shutdown()
        tasks = [c._task for c in self.connections if c._task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for conn in list(self.connections):
                if conn._task in pending:
                    log.warning(
                        "closing %s: request still running after %.0f s", conn.client, timeout
                    )
                    conn._task.cancel()
                    conn._abort()
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
