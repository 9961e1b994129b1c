"""``Guards``: a connection's limits and timeouts, the part of ``ServerProtocol`` that says no.

Kept apart from the request path of ``protocol.py``: the in-flight limit (503 with
``Retry-After``), the streaming body limit (413, against ``Content-Length`` and the chunk sizes
announced, before any byte is waited for), the body and whole-request deadlines (408), the
write stall (the connection is dropped), and the answer with which the server itself ends a
connection. Each deadline is a phase of ``timeouts.py``, swept by the server's tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from ..accesslog import ConnectionFields, log_request
from ..errors import ProtocolError
from ..http11 import IDLE, SEND_RESPONSE, Driver
from ..http11 import Request as RequestHead
from ..messages import Request
from ..transport import BodyQueue, FlowControl
from . import respond, timeouts
from .access import connection_fields
from .config import ServerConfig

__all__ = ["Guards", "PeerLog", "peer_log"]

log = logging.getLogger("framework.server")


class PeerLog:
    """INFO lines about peers' misbehaviour, at most ``per_second`` a second.

    Past that, lines go to DEBUG and the next second starts with one INFO line counting them:
    a flood of slow or oversized clients cannot flood the log.
    """

    __slots__ = ("_per_second", "_window", "_shown", "_held")

    def __init__(self, per_second: int = 10) -> None:
        self._per_second = per_second
        self._window = 0.0
        self._shown = 0
        self._held = 0

    def info(self, message: str, *args: object) -> None:
        """Log ``message % args`` at INFO, or at DEBUG once this second's lines are used."""
        now = time.monotonic()
        if now - self._window >= 1.0:
            if self._held:
                log.info("%d more lines like the above in the last second (at DEBUG)", self._held)
            self._window, self._shown, self._held = now, 0, 0
        if self._shown < self._per_second:
            self._shown += 1
            log.info(message, *args)
        else:
            self._held += 1
            log.debug(message, *args)


#: The server's one ``PeerLog``.
peer_log = PeerLog()


class _Context(Protocol):
    """What the guards need of the server's ``ServerContext``."""

    config: ServerConfig
    deadlines: timeouts.Deadlines
    in_flight: int
    on_close: Callable[[], None] | None


class Guards:
    """The limits and timeouts of one connection (mixed into ``ServerProtocol``)."""

    context: _Context
    driver: Driver
    flow: FlowControl
    client: tuple[str, int] | None
    is_closed: bool
    phase: str
    deadline: float | None
    _task: object | None
    _body: BodyQueue | None
    _request: Request | None
    _request_deadline: float | None
    _body_bytes: int
    _ended: bool
    transport: object
    #: Bytes written for the current request, and when its head arrived (``time.monotonic``).
    sent: int
    began: float
    request_client: tuple[str, int] | None
    _log_fields: ConnectionFields | None

    def write(self, data: bytes) -> None:  # pragma: no cover - ServerProtocol's
        raise NotImplementedError

    def send_continue(self) -> None:  # pragma: no cover - ServerProtocol's
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - ServerProtocol's
        raise NotImplementedError

    def expire(self) -> None:  # pragma: no cover - ServerProtocol's
        raise NotImplementedError

    # --- request arrival ----------------------------------------------------------------------

    def _enter_head(self) -> None:
        """The first bytes of a request head arrived: the head deadline runs from now."""
        context = self.context
        timeout = context.config.request_timeout
        if timeout is not None:
            self._request_deadline = context.deadlines.now() + timeout
        context.deadlines.enter(self, timeouts.HEAD, cap=self._request_deadline)

    def _refused(self, head: RequestHead) -> bool:
        """Answer a request the server will not take (503, 413) and close; True if it did."""
        context = self.context
        config = context.config
        if config.request_timeout is not None and self._request_deadline is None:
            self._request_deadline = context.deadlines.now() + config.request_timeout
        limit = config.max_in_flight
        if limit is not None and context.in_flight >= limit:
            peer_log.info("refusing %s: %d requests in flight already (503)", self.client, limit)
            retry = (b"retry-after", b"%d" % config.retry_after)
            self.answer_and_close(503, head, (retry,))
            return True
        limit = config.max_stream_body_bytes
        if limit is not None and not self.driver.is_plain:
            # Right after the head this is the whole Content-Length (or the first chunk).
            if self.driver.announced_body_bytes > limit:
                peer_log.info("refusing %s: request body over %d bytes (413)", self.client, limit)
                self.answer_and_close(413, head)
                return True
        return False

    def _body_received(self, size: int) -> bool:
        """Count ``size`` body bytes; refuse the body (413) past the limit; True if refused."""
        self._body_bytes += size
        context = self.context
        limit = context.config.max_stream_body_bytes
        if limit is not None and self._body_bytes + self.driver.announced_body_bytes > limit:
            peer_log.info("refusing %s: request body over %d bytes (413)", self.client, limit)
            if self._body is not None:
                self._body.lose("request body too large (413)")
            self.answer_and_close(413)
            return True
        if self.phase is timeouts.BODY:  # the client is sending: its silence starts again
            context.deadlines.enter(self, timeouts.BODY, cap=self._request_deadline)
        return False

    def _body_wanted(self) -> None:
        """The handler waits for body bytes: say ``100 Continue``, start the body deadline."""
        self.send_continue()
        if self.phase is timeouts.BUSY and not self.is_closed:
            self.context.deadlines.enter(self, timeouts.BODY, cap=self._request_deadline)

    def _body_expired(self) -> None:
        body = self._body
        if (
            body is None
            or body.is_complete
            or self._task is None
            or not body.is_waiting
            or self.flow.is_read_paused
        ):
            # Nobody is waiting for the body now: the silence is not the client's doing.
            self.phase, self.deadline = timeouts.BUSY, None
            return
        config = self.context.config
        deadline = self._request_deadline
        if deadline is not None and self.context.deadlines.now() >= deadline:
            peer_log.info(
                "closing %s: request not received whole in %g s (408)",
                self.client,
                config.request_timeout,
            )
        else:
            peer_log.info(
                "closing %s: no request body byte for %g s (408)", self.client, config.body_timeout
            )
        body.lose("request body not received in time (408)")
        self.answer_and_close(408)

    # --- answers and the end ----------------------------------------------------------------

    def answer_and_close(
        self,
        status: int,
        head: RequestHead | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer ``status`` when no response has started yet, then close the connection.

        The request it answers (``head``, or the one being handled) gets its access-log line.
        """
        if self.is_closed:
            return
        driver = self.driver
        if driver.our_state is IDLE or driver.our_state is SEND_RESPONSE:
            try:
                self.write(respond.error_answer(driver, status, headers))
            except ProtocolError:  # pragma: no cover - the driver refused; nothing more to say
                pass
            else:
                self._log_answer(status, head)
        self._close()

    def _log_answer(self, status: int, head: RequestHead | None) -> None:
        if not self.context.config.access_log:
            return
        if head is not None:
            method = head.method.decode("ascii", "replace")
            target = head.target.decode("latin-1")
            version = head.http_version.decode("ascii", "replace")
            self.log_access(method, target, version, status)
        elif self._request is not None and self._task is not None:
            request = self._request
            self.log_access(request.method, request.url, request.http_version, status)

    def log_access(self, method: str, target: str, version: str, status: int) -> None:
        """Write the access-log line of the current request, answered ``status``."""
        fields = self._log_fields
        if fields is None:
            fields = self._log_fields = connection_fields(self.transport)
        log_request(
            self.request_client,
            method,
            target,
            version,
            status,
            self.sent,
            time.monotonic() - self.began,
            fields,
            self.context.config.access_log_format,
        )

    def _is_gone(self) -> bool:
        """True once the connection is closed (``Request.is_disconnected``)."""
        return self.is_closed

    def _end(self) -> None:
        """Tell the listener, once, that this connection no longer counts."""
        if not self._ended:
            self._ended = True
            on_close = self.context.on_close
            if on_close is not None:
                on_close()

    # --- writing ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until the client can take more bytes, for at most the write timeout.

        Raises:
            ConnectionError: the connection was lost (or dropped as stalled) meanwhile.
        """
        flow = self.flow
        if not flow.is_write_paused:
            await flow.drain()  # returns at once, or raises when the connection is gone
            return
        phase, deadline = self.phase, self.deadline
        self.context.deadlines.enter(self, timeouts.WRITE)
        try:
            await flow.drain()
        finally:
            if self.phase is timeouts.WRITE:
                self.phase, self.deadline = phase, deadline
