"""``ServerProtocol``: one client connection, from received bytes to the handler and back.

It feeds received bytes to a server-role ``Driver``, turns the request events into a
``Request``, runs the handler in a task, and writes the ``Response`` (``respond.py``); it owns
keep-alive, pipelining, 100-continue, the phase of its timeout (``timeouts.py``) and the
answers to malformed input. It can hand its transport to another protocol (after ``101
Switching Protocols``). What it needs of the server comes in a ``ServerContext``: the handler,
the config, the loop and the set of open connections; it never sees the ``Server``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..accesslog import log_rejected
from ..errors import ClientDisconnect, ProtocolError
from ..http11 import (
    IDLE,
    NEED_DATA,
    PAUSED,
    SEND_RESPONSE,
    ConnectionClosed,
    Data,
    Driver,
    EndOfMessage,
    InformationalResponse,
)
from ..http11 import Request as RequestHead
from ..limits import DRAIN_IDLE_GRACE, WRITE_HIGH_WATER
from ..messages import Handler, Headers, Request, Response, TLSInfo
from ..tls import tls_info
from ..transport import BodyQueue, FlowControl, eager_task_starter
from . import respond, timeouts
from .access import connection_fields
from .config import ServerConfig
from .guards import Guards, peer_log
from .proxy import ForwardedAllow

__all__ = ["ServerContext", "ServerProtocol"]

log = logging.getLogger("framework.server")

_CONTINUE = InformationalResponse(100, [])


class ServerContext:
    """What every connection of one server shares: handler, config, loop, and its siblings.

    Attributes:
        connections: the open connections (each adds and removes itself).
        is_draining: set when the server shuts down: responses then close their connection.
        in_flight: the requests being handled now (for ``max_in_flight``).
        on_close: called once when a connection ends (the listener counts connections).
    """

    __slots__ = (
        "handler",
        "config",
        "loop",
        "is_tls",
        "deadlines",
        "connections",
        "is_draining",
        "in_flight",
        "requests_served",
        "on_close",
        "start_task",
        "forwarded",
        "scheme",
        "upgraded",
    )

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig,
        loop: asyncio.AbstractEventLoop,
        is_tls: bool,
    ) -> None:
        self.handler = handler
        self.config = config
        self.loop = loop
        self.is_tls = is_tls
        self.deadlines = timeouts.Deadlines(
            loop,
            {
                timeouts.IDLE: config.keep_alive_timeout,
                timeouts.HEAD: config.head_timeout,
                timeouts.BODY: config.body_timeout,
                timeouts.WRITE: config.write_timeout,
            },
        )
        self.connections: set[ServerProtocol] = set()
        self.is_draining = False
        self.in_flight = 0
        self.requests_served = 0
        self.on_close: Callable[[], None] | None = None
        #: Starts a request's task. On Python 3.12+ the task starts eagerly: a handler that
        #: answers without waiting runs to its end inside this call, and costs no scheduling
        #: of the loop. A task factory the application set on the loop is used instead.
        self.start_task = eager_task_starter(loop) or loop.create_task
        #: The peers whose proxy headers are believed (``None``: nobody's).
        allow = ForwardedAllow(config.forwarded_allow_ips)
        self.forwarded = allow if allow.all or allow.spec else None
        self.scheme = "https" if is_tls else "http"
        #: Protocols connections were handed to after ``101`` (WebSockets): the drain asks
        #: each to ``going_away()`` and waits for its ``closed`` future.
        self.upgraded: set[Any] = set()


class ServerProtocol(Guards, asyncio.Protocol):
    """One client connection: HTTP/1.1 over the transport, one request at a time.

    Its limits and timeouts (408, 413, 503, the write stall) are the methods of ``Guards``.
    """

    context: ServerContext

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        config = context.config
        self.driver = Driver(
            "server",
            config.max_header_bytes,
            plain=not config.h11_only,
            max_request_line_bytes=config.max_request_line_bytes,
            max_header_count=config.max_header_count,
        )
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl = None  # type: ignore[assignment]  # set in connection_made
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.is_closed = False
        #: The timeout phase (``timeouts.IDLE``, ``HEAD`` or ``BUSY``) and when it ends.
        self.phase = timeouts.IDLE
        self.deadline: float | None = None
        self.requests = 0
        self._tls: TLSInfo | None = None
        self._tls_done = False
        self._task: asyncio.Task[None] | None = None
        self._body: BodyQueue | None = None
        self._continue_sent = False
        self._closing = False  # finish the current response, then close
        self._stopping = False  # shutdown() was called: answer what has arrived, then close
        self._request: Request | None = None
        #: When the request being received must have arrived whole (``request_timeout``).
        self._request_deadline: float | None = None
        self._body_bytes = 0  # body bytes received for the current request
        self._ended = False  # on_close was called
        # While a request's task is being started (it may run to its end inside the call, on
        # 3.12+), the next pipelined request is read by _process's loop, not from inside it.
        self._starting = False
        self._read_next = False
        self.sent = 0
        self.began = 0.0
        self._log_fields = None
        self._proxied = False  # the peer is a trusted proxy: its headers name the client
        #: The client of the current request: the peer, or whom a trusted proxy names.
        self.request_client: tuple[str, int] | None = None

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self.flow = FlowControl(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = self.request_client = (peer[0], peer[1])
            forwarded = self.context.forwarded
            self._proxied = forwarded is not None and forwarded.trusts(peer[0])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.local = (local[0], local[1])
        self.context.deadlines.enter(self, timeouts.IDLE)
        self.context.connections.add(self)
        if self.context.is_draining:
            # Accepted from the backlog while the server stops: its first request is answered
            # (with Connection: close) if it comes within the grace.
            self.shutdown(DRAIN_IDLE_GRACE)

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
            # A pipelined request arrived while the previous one is being answered (RFC 9112
            # 9.3.2): the driver holds it; stop reading so a client cannot queue requests
            # without bound.
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
        self.context.connections.discard(self)
        self._end()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # --- reading ----------------------------------------------------------------------------

    def _process(self) -> None:
        """Handle received events until a request is being answered or more data is needed."""
        driver = self.driver
        while True:
            try:
                event = driver.next_event()
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if event is NEED_DATA:
                if driver.trailing_data[0] and self.phase is timeouts.IDLE:
                    # Part of a request head has arrived: the head timeout applies from now.
                    self._enter_head()
                return
            if event is PAUSED:  # pragma: no cover - only reached between cycles, never here
                return
            if type(event) is RequestHead:
                if not self._start_request(event):
                    return
                # The request was answered inside _start_request: read the next one.
            else:
                # ConnectionClosed: the client closed between requests. Nothing else can
                # start a cycle; the driver raises for anything else.
                self._close()
                return

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
                if self._body_received(len(event.data)):
                    return
                body.feed(event.data)
            elif type(event) is EndOfMessage:
                body.finish()
                if self.phase is timeouts.BODY:
                    self.phase, self.deadline = timeouts.BUSY, None
            elif event is NEED_DATA or event is PAUSED:
                return
            elif type(event) is ConnectionClosed:  # the client closed mid-body
                body.finish()
                self._closing = True
                return

    def _start_request(self, event: RequestHead) -> bool:
        """Start the task answering ``event``; True when it was answered at once and the
        connection is ready for the next request."""
        context = self.context
        context.requests_served += 1
        self.phase, self.deadline = timeouts.BUSY, None
        self.requests += 1
        self.sent = 0
        self.began = time.monotonic()
        scheme = context.scheme
        if self._proxied:
            self.request_client, scheme = context.forwarded.resolve(  # type: ignore[union-attr]
                self.client, event.headers, scheme
            )
        if self._refused(event):
            return False
        if not self._tls_done:
            self._tls_done = True
            if context.is_tls:
                self._tls = tls_info(self.transport.get_extra_info("ssl_object"))  # type: ignore[union-attr]
        body = self._body = BodyQueue(self.flow, self._body_wanted)
        self._continue_sent = False
        self._body_bytes = 0
        request = self._request = Request(
            event.method.decode("ascii"),
            event.target,
            Headers.from_raw(event.headers),
            body=body,
            client=self.request_client,
            tls=self._tls,
            http_version=event.http_version.decode("ascii"),
            max_body_size=context.config.max_body_bytes,
            disconnected=self._is_gone,
            server=self.local,
            scheme=scheme,
            upgrade=self._switch_protocols,
        )
        self._process_body()
        if self.is_closed:
            # The body was refused already (413), or its framing failed in the same read as
            # the head and was answered (400): the request is never dispatched.
            self._body = None
            return False
        context.in_flight += 1
        self._starting = True
        try:
            task = context.start_task(self._respond(request))
        finally:
            self._starting = False
        if not task.done():
            if self._task is None:  # else the task sending its answer (see _respond)
                self._task = task
            return False
        # An eager task ran to its end inside start_task: _respond has already cleared the
        # task and ended the cycle (so self._task must not be set to the finished task).
        read_next, self._read_next = self._read_next, False
        return read_next

    def send_continue(self) -> None:
        """Send ``100 Continue`` once, if the client is waiting for it (RFC 9110 10.1.1).

        Called when the handler first waits for the body: a client that asked is told to go
        on only once the body is really wanted.
        """
        if not self._continue_sent and self.driver.they_are_waiting_for_100_continue:
            self._continue_sent = True
            self.write(self.driver.send(_CONTINUE))

    # --- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write ``data`` to the transport; nothing once the connection is closed."""
        if not self.is_closed:
            self.sent += len(data)
            self.transport.write(data)  # type: ignore[union-attr]

    async def _respond(self, request: Request) -> None:
        context = self.context
        answering = False  # _answer does the bookkeeping from then on
        try:
            try:
                response = await context.handler(request)
                if not isinstance(response, Response):
                    raise TypeError(
                        f"handler returned {type(response).__name__}, expected a Response"
                    )
            except Exception as exc:
                if self.is_closed or isinstance(exc, ClientDisconnect):
                    # The client left or was cut off: nobody to answer, and no bug to trace.
                    log.debug(
                        "%s %s from %s ended: %r", request.method, request.path, self.client, exc
                    )
                    self.abort()
                    return
                response = respond.internal_error(request)
            answering = True
            on_end = response.on_end
            if on_end is None:
                return await self._answer(request, response)
            # The handler goes on in this task, where it began (an ASGI app streaming, or at
            # work after its answer); the answer is sent by a task of its own.
            self._task = context.loop.create_task(self._answer(request, response))
            await respond.end_exchange(on_end, request)
        finally:
            if not answering:
                self._task = None
                context.in_flight -= 1

    async def _answer(self, request: Request, response: Response) -> None:
        status = 500
        context = self.context
        try:
            if self.is_closed:
                return
            body = self._body
            limit = context.config.max_requests_per_connection
            if limit is not None and self.requests >= limit:
                self._closing = True  # the last request this connection may carry
            # Stopping: the last answer says Connection: close, unless the client has already
            # pipelined another request, which is answered too.
            stopping = (self._stopping or context.is_draining) and not self.driver.trailing_data[0]
            if self._closing or body is None or not body.is_complete or stopping:
                # The request body was not all read (so the connection cannot be reused), or
                # the server is shutting down: say so, and close after this response.
                self._closing = True
            status = await respond.send_response(self, request, response, self._closing)
            if response.background_tasks:
                # After the whole response is out; the connection's next request, and the
                # graceful drain, wait for it.
                await response.run_background()
        except (ConnectionError, ProtocolError) as exc:
            log.debug("connection ended while responding: %r", exc)
            self.abort()
        except Exception:
            # The body iterator failed after the head was sent: the response cannot be
            # finished, so cut the connection (a truncated body) rather than leave it hanging.
            log.exception("error while sending the response to %s %s", request.method, request.path)
            self.abort()
        finally:
            self._task = None
            context.in_flight -= 1
        if context.config.access_log:
            self.log_access(request.method, request.url, request.http_version, status)
        self._end_cycle()

    def _end_cycle(self) -> None:
        if self.is_closed:
            return
        driver = self.driver
        if self._closing or not driver.is_reusable:
            self._close()
            return
        driver.start_next_cycle()
        self._body = None
        self._request = None
        self._request_deadline = None
        self.context.deadlines.enter(self, timeouts.IDLE)
        self.flow.resume_reading()
        # Pipelined requests already received are waiting in the driver.
        if self._starting:
            self._read_next = True  # _process reads it when start_task returns
        else:
            self._process()
        if self._stopping or self.context.is_draining:
            # Answered with keep-alive while stopping (a pipelined request followed, or the
            # stop began as this answer went out): the next request may be on its way.
            self.shutdown(DRAIN_IDLE_GRACE)

    # --- errors, timeouts and closing -------------------------------------------------------

    def _protocol_error(self, exc: ProtocolError) -> None:
        """Answer malformed input with the driver's status hint, then close cleanly."""
        log.debug("bad request from %s: %s", self.client, exc)
        if self._task is not None:
            # A handler is running for a request whose body turned out malformed: it cannot
            # be answered sensibly any more.
            if self._body is not None:
                self._body.lose(f"malformed request body: {exc}")
            self.abort()
            return
        driver = self.driver
        if driver.our_state is IDLE or driver.our_state is SEND_RESPONSE:
            try:
                answer = respond.error_answer(driver, exc.status_hint)
            except ProtocolError:  # pragma: no cover - the driver refused; nothing more to say
                pass
            else:
                self.write(answer)
                config = self.context.config
                if config.access_log:
                    if self._log_fields is None:
                        self._log_fields = connection_fields(self.transport)
                    fields = self._log_fields
                    log_rejected(
                        self.client, exc.status_hint, len(answer), fields, config.access_log_format
                    )
        self._close()

    def expire(self) -> None:
        """The deadline of the current phase passed: close the connection (408 when due)."""
        phase = self.phase
        if phase is timeouts.HEAD:
            limit = self.context.config.head_timeout
            peer_log.info("closing %s: request head not received in %g s", self.client, limit)
            self.answer_and_close(408)
        elif phase is timeouts.BODY:
            self._body_expired()
        elif phase is timeouts.WRITE:
            limit = self.context.config.write_timeout
            peer_log.info(
                "closing %s: the response waited %g s for the client to read", self.client, limit
            )
            self.abort()
        else:
            self._close()

    def _close(self) -> None:
        if not self.is_closed and self.transport is not None:
            self.is_closed = True
            self.deadline = None
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection at once, dropping anything unsent."""
        if self.transport is not None:
            self.is_closed = True
            self.transport.abort()

    def shutdown(self, grace: float = 0.0) -> None:
        """Close after the response in progress, or at once when no request is arriving.

        A request whose bytes have begun to arrive is read and answered first, with
        ``Connection: close`` (or keep-alive when another request was pipelined behind it,
        which is then answered the same way). An idle connection closes at once, unless its
        last response went out less than ``grace`` seconds ago: the client may have a request
        on its way, so it gets until ``grace`` has passed for that request to arrive.
        """
        self._stopping = True
        if self._task is not None or self.is_closed:
            return
        if self.phase is not timeouts.IDLE or self.driver.trailing_data[0]:
            return  # a request is arriving: it is answered, then the connection closes
        keep_alive = self.context.deadlines.limit(timeouts.IDLE)
        wait = 0.0
        if grace > 0 and self.deadline is not None and keep_alive is not None:
            idle_since = self.deadline - keep_alive
            wait = idle_since + grace - self.context.deadlines.now()
        if wait <= 0:
            self._close()
        else:
            self.context.loop.call_later(wait, self._close_if_idle)

    def _close_if_idle(self) -> None:
        """Close unless a request started arriving since ``shutdown``."""
        if self._task is None and self.phase is timeouts.IDLE and not self.driver.trailing_data[0]:
            self._close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task answering the current request, if one is running."""
        return self._task

    def _switch_protocols(self, headers: list[tuple[bytes, bytes]], protocol: Any) -> None:
        """Answer ``101 Switching Protocols`` with ``headers``, then hand the transport over.

        The drain reaches ``protocol`` through ``ServerContext.upgraded`` until its ``closed``
        future is done.

        Raises:
            ConnectionError: the client is gone.
        """
        if self.is_closed or self.transport is None:
            raise ConnectionResetError("the client closed the connection")
        self.write(self.driver.send(InformationalResponse(101, headers)))
        configure = getattr(protocol, "configure", None)
        if configure is not None:  # the server's defaults for what the route left unset
            configure(self.context.config)
        upgraded = self.context.upgraded
        upgraded.add(protocol)
        protocol.closed.add_done_callback(lambda _: upgraded.discard(protocol))
        self.hand_over(protocol)

    def _end(self) -> None:
        # The request and its body hold bound methods of this protocol: left in place, the
        # cycle keeps the connection (its transport's TLS state, tens of KiB outside Python's
        # heap) alive until a full garbage collection, both when the client goes and when
        # the transport is handed over after 101. A running handler keeps its own reference.
        self._body = None
        self._request = None
        super()._end()

    def hand_over(self, protocol: asyncio.Protocol) -> None:
        """Give the transport to ``protocol`` (after ``101 Switching Protocols``).

        ``protocol`` gets ``connection_made`` with the transport, then the bytes the client
        sent after the request (and ``eof_received`` when it had closed). This connection
        stops reading, leaves the server's set and its timeouts; the server's drain no longer
        covers it.
        """
        transport = self.transport
        if transport is None or self.is_closed:
            raise RuntimeError("the connection is closed: there is no transport to hand over")
        trailing, closed = self.driver.trailing_data
        self.is_closed = True
        self.deadline = None
        self.context.connections.discard(self)
        self._end()
        self.flow.resume_reading()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if trailing:
            protocol.data_received(trailing)
        if closed:
            protocol.eof_received()

    def __repr__(self) -> str:
        state = "busy" if self._task is not None else "idle"
        return f"<ServerProtocol {self.client} {state} requests={self.requests}>"
