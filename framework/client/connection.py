"""``ClientConnection``: one HTTP/1.1 connection of the client, and ``Origin``, where it goes.

The connection is the asyncio ``Protocol`` on the loop's TLS transport: it owns the transport, a
client-role ``Driver``, the queue of received body bytes and its own state (connecting, idle,
active, closed), and turns transport events into the client's errors. It reports its end
through the ``on_lost`` callback it is given. It knows nothing of how connections are opened
(``connector.py``) or shared (``pool.py``), nor of URLs, redirects, content decoding or the
response object the caller sees.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import NamedTuple

from .. import limits
from ..errors import (
    ClientError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnectedError,
    TimeoutException,
    WriteError,
    WriteTimeout,
)
from ..http11 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    Driver,
    EndOfMessage,
    Prepared,
    Request,
    Response,
)
from ..messages import TLSInfo
from ..tls import handshake_error, tls_info
from ..transport import BodyQueue, FlowControl

__all__ = ["ACTIVE", "CLOSED", "CONNECTING", "IDLE", "ClientConnection", "Origin"]

_INF = float("inf")
_END = EndOfMessage()


class Origin(NamedTuple):
    """Where a connection goes: scheme, host (lowercase ASCII, no brackets) and port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# Connection states, as ``__repr__`` shows them.
CONNECTING, IDLE, ACTIVE, CLOSED = "CONNECTING", "IDLE", "ACTIVE", "CLOSED"


class ClientConnection(asyncio.Protocol):
    """One HTTP/1.1 connection in the client role, one request at a time.

    Received body bytes are queued here; reading from the socket pauses while more than
    ``limits.READ_HIGH_WATER`` bytes wait for the caller and resumes as it consumes them.
    End of file and ``connection_lost`` mark the connection unusable at once, and
    ``on_lost(connection)`` is called once the transport is gone, so whoever holds the
    connection idle notices that the server closed it without polling it.

    Args:
        origin: where the connection goes.
        loop: the event loop it runs on.
        on_lost: called with the connection once its transport is gone.
        keep_alive_expiry: the longest an idle connection is kept; a shorter ``Keep-Alive:
            timeout=`` from the server lowers it.
        max_header_bytes: the largest response head accepted.
        h11_only: read every response with h11, none on the driver's plain path.
    """

    __slots__ = (
        "origin",
        "driver",
        "transport",
        "flow",
        "state",
        "requests",
        "idle_since",
        "expires_at",
        "keep_alive_expiry",
        "head",
        "_max_keep_alive",
        "_on_lost",
        "_loop",
        "_body",
        "_got_bytes",
        "_eof",
        "_failure",
        "_waiter",
        "_deadline",
        "_silence",
        "_timer",
        "_timer_when",
        "_lost",
        "_tls",
    )

    def __init__(
        self,
        origin: Origin,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[ClientConnection], None],
        keep_alive_expiry: float,
        max_header_bytes: int,
        h11_only: bool = False,
    ) -> None:
        self.origin = origin
        self.driver = Driver("client", max_header_bytes, plain=not h11_only)
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.state = CONNECTING
        #: Requests sent on this connection, the one in progress included.
        self.requests = 0
        self.idle_since = 0.0
        self.expires_at = _INF
        self.keep_alive_expiry = keep_alive_expiry
        #: The head of the response in progress, once it has arrived.
        self.head: Response | None = None
        self._max_keep_alive = keep_alive_expiry
        self._on_lost = on_lost
        self._loop = loop
        self._body: BodyQueue = None  # type: ignore[assignment]  # set in connection_made
        self._got_bytes = False
        self._eof = False
        self._failure: ClientError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = _INF
        self._silence: float | None = None  # the read timeout being waited on; None: total
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = _INF
        self._lost: asyncio.Future[None] = loop.create_future()
        self._tls: TLSInfo | None = None

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(transport)
        self._body = BodyQueue(self.flow)

    def data_received(self, data: bytes) -> None:
        if self.state is not ACTIVE:
            # Bytes nobody asked for (a 408 before closing, or junk): the connection can no
            # longer be trusted to frame the next response.
            self._fail(ReadError(f"{self.origin} sent data while no request was in flight"))
            self.abort()
            return
        self._got_bytes = True
        try:
            self.driver.receive_data(data)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        self._process()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self.state is ACTIVE:
            try:
                self.driver.receive_data(b"")
            except RemoteProtocolError as exc:  # pragma: no cover - h11 accepts EOF in any state
                self._protocol_error(exc)
                return None
            self._process()
        # Returning a false value lets the transport close itself.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        if self.flow is not None:
            self.flow.connection_lost(exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.is_complete and self._failure is None:
            if isinstance(exc, ssl.SSLError):
                self._failure = handshake_error(exc, str(self.origin))
            elif exc is not None:
                self._failure = ReadError(f"connection to {self.origin} lost: {exc}")
                self._failure.__cause__ = exc
            else:
                self._failure = self._disconnected()
        self._wake()
        if not self._lost.done():
            self._lost.set_result(None)
        self._on_lost(self)

    def pause_writing(self) -> None:
        if self.flow is not None:
            self.flow.pause_writing()

    def resume_writing(self) -> None:
        if self.flow is not None:
            self.flow.resume_writing()

    # --- receiving ----------------------------------------------------------------------------

    def _process(self) -> None:
        driver = self.driver
        while True:
            try:
                event = driver.next_event()
            except RemoteProtocolError as exc:
                self._protocol_error(exc)
                return
            if type(event) is Data:
                self._body.feed(event.data)
            elif type(event) is Response:
                self.head = event
                self._read_keep_alive(event)
            elif type(event) is EndOfMessage:
                self._body.finish()
                break
            elif event is NEED_DATA or event is PAUSED:
                break
            elif type(event) is ConnectionClosed:
                break
            # InformationalResponse (100 Continue, 103 Early Hints): nothing to do.
        self._wake()

    def _read_keep_alive(self, head: Response) -> None:
        for name, value in head.headers:
            if name == b"keep-alive":
                for param in value.split(b","):
                    key, _, number = param.strip().partition(b"=")
                    if key.lower() == b"timeout":
                        try:
                            hint = float(number)
                        except ValueError:
                            continue
                        # Leave a margin so we never send on a connection the server is just
                        # closing; with a hint shorter than the margin, keep half of it.
                        margin = limits.CLIENT_KEEP_ALIVE_MARGIN
                        usable = hint - margin if hint > margin else hint / 2
                        self.keep_alive_expiry = min(self._max_keep_alive, usable)

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        if self._eof:
            failure: ClientError = self._disconnected()
        else:
            failure = ReadError(f"{self.origin} sent malformed HTTP/1.1: {exc}")
        failure.__cause__ = exc
        self._fail(failure)
        self.abort()

    def _disconnected(self) -> ServerDisconnectedError:
        if self.head is None and not self._got_bytes:
            message = f"{self.origin} closed the connection without sending a response"
            if self.requests == 1 and self.origin.scheme == "https":
                # Under TLS 1.3 a server refuses a client certificate (or its absence) after
                # our side of the handshake is done, and the loop reports only the close.
                message += (
                    "; on a new TLS connection this often means the server requires a client "
                    "certificate (pass cert= and key=)"
                )
            return ServerDisconnectedError(message)
        return ServerDisconnectedError(
            f"{self.origin} closed the connection before the response was complete"
        )

    def _fail(self, failure: ClientError) -> None:
        if self._failure is None:
            self._failure = failure
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, silence: float | None, deadline: float | None) -> None:
        """Wait for the next event, bounded by ``silence`` seconds and the total deadline."""
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        when = _INF if silence is None else loop.time() + silence
        if deadline is not None and deadline < when:
            when = deadline
            self._silence = None
        else:
            self._silence = silence
        self._deadline = when
        # One timer per connection, moved only when it would fire too late: sequential
        # requests reuse it instead of scheduling and cancelling one each.
        if when < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(when, self._on_timer)
            self._timer_when = when
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = _INF
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._loop.time() + 0.001 >= self._deadline:
            silence = self._silence
            waiter.set_exception(
                _total_timeout()
                if silence is None
                else ReadTimeout(f"{self.origin} sent nothing for {silence} s")
            )
        elif self._deadline != _INF:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_when = self._deadline

    async def receive_head(self, silence: float | None, deadline: float | None) -> Response:
        """Wait for the response's status line and headers.

        Raises:
            ReadTimeout: nothing arrived for ``silence`` seconds.
            ServerDisconnectedError, ReadError, TLSError: the connection failed.
        """
        while self.head is None:
            if self._failure is not None:
                raise self._failure
            await self._wait(silence, deadline)
        return self.head

    def take_chunks(self) -> list[bytes]:
        """Every body chunk received so far (possibly none); resumes reading if paused."""
        return self._body.take_all()

    async def receive_chunk(self, silence: float | None, deadline: float | None) -> bytes:
        """The next piece of the body, ``b""`` once it is complete.

        Raises:
            ReadTimeout: nothing arrived for ``silence`` seconds.
            ServerDisconnectedError, ReadError, TLSError: the connection failed mid-body.
        """
        body = self._body
        while True:
            chunk = body.pop()
            if chunk is not None:
                return chunk
            if self._failure is not None:
                raise self._failure
            await self._wait(silence, deadline)

    @property
    def is_complete(self) -> bool:
        """True once the whole response has been received (it may not be consumed yet)."""
        return self._body is not None and self._body.is_complete

    @property
    def has_response_bytes(self) -> bool:
        """True once any byte of the current response arrived."""
        return self._got_bytes

    @property
    def buffered_bytes(self) -> int:
        """Body bytes received and waiting for the caller."""
        return self._body.buffered

    @property
    def tls(self) -> TLSInfo | None:
        """What the TLS handshake agreed (version, cipher, ALPN), or ``None`` for plain HTTP."""
        if self._tls is None and self.transport is not None:
            self._tls = tls_info(self.transport.get_extra_info("ssl_object"))
        return self._tls

    # --- sending ------------------------------------------------------------------------------

    def _open_transport(self) -> asyncio.Transport:
        transport = self.transport
        if self.state is CLOSED or self._eof or transport is None or transport.is_closing():
            raise ServerDisconnectedError(f"{self.origin} closed the connection while it was idle")
        return transport

    def send(self, request: Request, body: bytes | None, end: bool) -> None:
        """Write the request head, ``body`` and (when ``end``) the end of message in one write.

        Raises:
            ServerDisconnectedError: the connection closed while it was idle.
        """
        transport = self._open_transport()
        self.requests += 1
        driver = self.driver
        data = driver.send(request)
        if body:
            data += driver.send(Data(body))
        if end:
            data += driver.send(_END)
        transport.write(data)

    def send_prepared(self, prepared: Prepared) -> None:
        """Write a whole request encoded before (``http11.prepare``).

        The bytes go out first and h11 records the request after, while the server works on
        it: one request at a time (sequentially), that hides h11's send bookkeeping in the
        round trip (``benchmarks/client_compare.py``, sequential mode).

        Raises:
            ServerDisconnectedError: the connection closed while it was idle.
        """
        transport = self._open_transport()
        self.requests += 1
        transport.write(prepared.data)
        self.driver.record_sent(prepared)

    def send_data(self, data: bytes, end: bool = False) -> None:
        """Write a piece of a streamed body (chunked), and the end of it when ``end``."""
        if self.state is CLOSED or self.transport is None:
            raise self._failure or WriteError(f"connection to {self.origin} is closed")
        out = self.driver.send(Data(data)) if data else b""
        if end:
            out += self.driver.send(_END)
        self.transport.write(out)

    async def drain(self, write_timeout: float | None, deadline: float | None) -> None:
        """Wait while the transport's write buffer is above its high-water mark.

        Raises:
            WriteTimeout: the server took no bytes for ``write_timeout`` seconds.
            WriteError: the connection was lost.
        """
        flow = self.flow
        if flow is None or not flow.is_write_paused:
            if self.state is CLOSED:
                raise WriteError(f"connection to {self.origin} lost while sending the request")
            return
        limit, by_deadline = write_timeout, False
        if deadline is not None:
            remaining = deadline - self._loop.time()
            if limit is None or remaining < limit:
                limit, by_deadline = remaining, True
        try:
            async with asyncio.timeout(limit):
                await flow.drain()
        except TimeoutError as exc:
            if by_deadline:
                raise _total_timeout() from exc
            raise WriteTimeout(
                f"{self.origin} accepted no request bytes for {write_timeout} s"
            ) from exc
        except ConnectionError as exc:
            raise WriteError(f"connection to {self.origin} lost while sending: {exc}") from exc

    # --- state, as the pool moves it ----------------------------------------------------------

    def activate(self) -> None:
        """Mark the connection as carrying a request: newly opened, or handed from the one
        that finished straight to the next."""
        self.state = ACTIVE

    def reuse(self, now: float) -> bool:
        """Take this idle connection for a request: True (and active) when it is still usable
        at ``now``; False when it expired or the server closed it."""
        if self.state is IDLE and now < self.expires_at and not self._eof:
            self.state = ACTIVE
            return True
        return False

    def retire(self) -> None:
        """Mark the connection closed to new requests (``close()`` or ``abort()`` ends it)."""
        self.state = CLOSED

    # --- ending -------------------------------------------------------------------------------

    def finish(self, now: float) -> bool:
        """End the request/response cycle; True when the connection may carry another.

        Then it is idle from ``now``, reusable until ``expires_at``.
        """
        driver = self.driver
        reusable = (
            self.state is ACTIVE
            and self.is_complete
            and not self._eof
            and self._failure is None
            and driver.is_reusable
            and not self._body.buffered
            and not driver.trailing_data[0]
        )
        if reusable:
            driver.start_next_cycle()
            self.head = None
            self._body.clear()
            self._got_bytes = False
            self.flow.resume_reading()  # type: ignore[union-attr]
            self.state = IDLE
            self.idle_since = now
            self.expires_at = now + self.keep_alive_expiry
        return reusable

    def close(self) -> None:
        """Close gracefully (TLS close_notify), bounded by the transport's shutdown timeout."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping anything unsent or unread."""
        if self._failure is None and not self.is_complete:
            self._failure = ReadError(f"connection to {self.origin} was aborted")
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, grace: float) -> None:
        """Wait for ``connection_lost``; abort when it has not come within ``grace`` seconds."""
        if self.transport is None:
            return
        if not self._lost.done():
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._lost)
            except TimeoutError:
                self.transport.abort()
                await asyncio.shield(self._lost)

    def __repr__(self) -> str:
        return f"<ClientConnection [{self.origin}, {self.state}, requests: {self.requests}]>"


def _total_timeout() -> TimeoutException:
    return TimeoutException("the request's total deadline passed")
