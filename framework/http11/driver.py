"""The HTTP/1.1 driver both roles share: bytes in, our events out, and no I/O.

``Driver`` runs one connection's message cycles in either role. h11 defines HTTP/1.1 here:
every message is read and written by an ``h11.Connection``, except the plain ones, which the
driver reads and writes itself on the plain path (``plain.py``): a bodiless HTTP/1.1 request
and the whole in-memory response to it, on the server; the ``Content-Length`` response to a
request encoded once, on the client. The moment anything is not plain (or the caller does
anything else: streams a body, sends an event, the peer closes), the driver makes an
``h11.Connection``, replays into it every byte of the cycle so far and lets h11 carry on, so
the owner sees the same events, states and errors on either path (tests/test_http11_paths.py
compares them). ``plain=False`` has h11 read every message; a whole in-memory response is
still framed by ``plain.whole_response_head``, which is held byte-equal to h11's.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import h11

from ..errors import LocalProtocolError, RemoteProtocolError
from ..messages import reason_phrase
from . import plain as codec
from .checks import check_chunked_buffer, check_head, check_partial_head, head_size, refused_head
from .convert import Prepared, announced_left, from_h11_head, to_h11
from .events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HeaderList,
    Request,
    Response,
)

__all__ = ["NEED_DATA", "PAUSED", "Driver", "Role", "State"]

Role = Literal["client", "server"]
#: One side's state in the message cycle: compare with ``IDLE``, ``SEND_BODY``, ``DONE``...
State: TypeAlias = "type[h11._util.Sentinel]"

#: ``next_event()`` returns this when it needs more bytes from the peer.
NEED_DATA: Any = h11.NEED_DATA
#: ``next_event()`` returns this when the peer started a new message before this cycle ended
#: (pipelining): call ``start_next_cycle()`` once our side is done.
PAUSED: Any = h11.PAUSED

_END = EndOfMessage()
_CLOSED = ConnectionClosed()
_H11Request, _H11Response, _H11Info = h11.Request, h11.Response, h11.InformationalResponse
_H11Data, _H11End, _H11Closed = h11.Data, h11.EndOfMessage, h11.ConnectionClosed
_IDLE, _DONE, _SEND_RESPONSE, _SEND_BODY = h11.IDLE, h11.DONE, h11.SEND_RESPONSE, h11.SEND_BODY
_MUST_CLOSE, _ERROR = h11.MUST_CLOSE, h11.ERROR

# Where a cycle on the plain path stands. Server: _WAIT (for a request head), _EOM (the
# request was given, its end is next), _ANSWER (the request is complete, the response is due),
# _DONE, or _SHUT (the last response, which closes, was written). Client: _WAIT (nothing
# sent), _SENT (a request went out, its response head is awaited), _BODY (the body is being
# read), _DONE.
_WAIT, _EOM, _ANSWER, _SENT, _BODY, _DONE_STEP, _SHUT = range(7)

# (our state, their state) on the plain path, per role and step: what h11 would report.
_SERVER_STATES: dict[int, tuple[State, State]] = {
    _WAIT: (_IDLE, _IDLE),
    _EOM: (_SEND_RESPONSE, _SEND_BODY),
    _ANSWER: (_SEND_RESPONSE, _DONE),
    _DONE_STEP: (_DONE, _DONE),
    _SHUT: (_ERROR, _MUST_CLOSE),
}
_CLIENT_STATES: dict[int, tuple[State, State]] = {
    _WAIT: (_IDLE, _IDLE),
    _SENT: (_DONE, _SEND_RESPONSE),
    _BODY: (_DONE, _SEND_BODY),
    _DONE_STEP: (_DONE, _DONE),
}


def pairs(headers: Any) -> HeaderList:
    # h11 keeps (raw name, lowercase name, value) triples; take the last two without copying
    # the values. Its Headers is a Sequence whose iteration goes through __getitem__.
    return [(name, value) for _, name, value in headers._full_items]


def _remote(exc: h11.RemoteProtocolError) -> RemoteProtocolError:
    error = RemoteProtocolError(str(exc), exc.error_status_hint)
    error.__cause__ = exc
    return error


class Driver:
    """One HTTP/1.1 connection's state machine, in either role, with no I/O.

    Args:
        our_role: ``"client"`` or ``"server"``.
        max_incomplete_event_size: the most bytes a message head may take; more is a
            ``RemoteProtocolError`` with status hint 431.
        plain: read plain messages without h11 (``False``: h11 reads every message).
        max_request_line_bytes: the longest request line (server role); 414 above it.
        max_header_count: the most header fields in a request (server role); 431 above it.

    The checks h11 leaves out (``checks.py``) apply to every message received: a message
    that fails one raises ``RemoteProtocolError``, and so does every ``next_event()`` after.
    """

    __slots__ = (
        "our_role",
        "_server",
        "_h11_role",
        "_max_size",
        "_max_line",
        "_max_count",
        "_plain",
        "_error",
        "_chunked",
        "_conn",
        "_fresh",
        "_step",
        "_buf",
        "_eof",
        "_cycle",
        "_sent",
        "_left",
        "_their_11",
        "_their_keep_alive",
        "_their_head",
    )

    def __init__(
        self,
        our_role: Role,
        max_incomplete_event_size: int = 16 * 1024,
        *,
        plain: bool = True,
        max_request_line_bytes: int = 8 * 1024,
        max_header_count: int = 100,
    ) -> None:
        self._h11_role: State
        if our_role == "server":
            self._h11_role = h11.SERVER
        elif our_role == "client":
            self._h11_role = h11.CLIENT
        else:
            raise ValueError(f"our_role must be 'client' or 'server', not {our_role!r}")
        self.our_role = our_role
        self._server = our_role == "server"
        self._max_size = max_incomplete_event_size
        self._max_line = max_request_line_bytes
        self._max_count = max_header_count
        self._plain = plain
        # The error a check raised: raised again by every next_event() after it.
        self._error: RemoteProtocolError | None = None
        # The message being received has a chunked body (h11 path).
        self._chunked = False
        # The h11 connection, or None while the cycle is on the plain path.
        self._conn: h11.Connection | None = None if plain else self._new_h11()
        # True while an h11 connection made after both messages of a cycle were complete
        # (see _h11) stands for one in DONE: start_next_cycle() is then a no-op.
        self._fresh = False
        # The plain path: its step, the bytes received and not yet read, the end of file, the
        # bytes of this cycle read so far (to replay into h11), the request sent (client), and
        # the body bytes still due (client).
        self._step = _WAIT
        self._buf = b""
        self._eof = False
        self._cycle: list[bytes] = []
        self._sent: Prepared | None = None
        self._left = 0
        # What the peer's request allows, noted when it arrives (server role).
        self._their_11 = False
        self._their_keep_alive = False
        self._their_head = False

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(self._h11_role, max_incomplete_event_size=self._max_size)

    # --- state --------------------------------------------------------------------------------

    @property
    def is_plain(self) -> bool:
        """True while the current cycle is on the plain path (h11 has not been needed)."""
        return self._conn is None

    @property
    def our_state(self) -> State:
        """Our side's state (``IDLE``, ``SEND_BODY``, ``DONE``, ...)."""
        conn = self._conn
        if conn is not None:
            state = conn.our_state
            return _DONE if self._fresh and state is _IDLE else state
        return (_SERVER_STATES if self._server else _CLIENT_STATES)[self._step][0]

    @property
    def their_state(self) -> State:
        """The peer's state."""
        if self._error is not None:
            return _ERROR
        conn = self._conn
        if conn is not None:
            state = conn.their_state
            return _DONE if self._fresh and state is _IDLE else state
        if self._step == _ANSWER and not self._their_keep_alive:
            return _MUST_CLOSE
        return (_SERVER_STATES if self._server else _CLIENT_STATES)[self._step][1]

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """True when the client sent ``Expect: 100-continue`` and waits for our go-ahead."""
        conn = self._conn
        return conn is not None and conn.they_are_waiting_for_100_continue

    @property
    def is_reusable(self) -> bool:
        """True when both sides finished a message and the connection may carry another."""
        conn = self._conn
        if conn is None:
            return self._step == _DONE_STEP
        if self._fresh:
            return True
        return conn.our_state is _DONE and conn.their_state is _DONE

    @property
    def announced_body_bytes(self) -> int:
        """Body bytes announced (the rest of a Content-Length or of a chunk) and not yet sent:
        a server refuses a huge chunk size at once rather than wait for it."""
        return announced_left(self._conn)

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received but not yet parsed, and whether the peer closed after them.

        After ``101 Switching Protocols`` these are the first bytes of the new protocol.
        """
        conn = self._conn
        if conn is None:
            return self._buf, self._eof
        return conn.trailing_data

    # --- leaving the plain path ---------------------------------------------------------------

    def _h11(self) -> h11.Connection:
        """The h11 connection, made now (and told the cycle so far) when the cycle was plain."""
        conn = self._conn
        if conn is not None:
            return conn
        conn = self._conn = self._new_h11()
        step = self._step
        if step == _DONE_STEP:
            # Both messages are complete: h11 cannot be told of a response it did not write,
            # and a connection in IDLE is what its start_next_cycle() would leave; until that
            # is called, the states say DONE as h11's would.
            self._fresh = True
        else:
            sent = self._sent
            if sent is not None:
                _record(conn, sent)
            # Replay what was read in this cycle, consuming the events already given out
            # (h11 gives the same ones: tests/test_http11_plain.py), then what was not read.
            for piece in self._cycle:
                conn.receive_data(piece)
                conn.next_event()
            if step == _ANSWER:
                conn.next_event()  # the request's EndOfMessage
            if step == _SHUT:
                conn.next_event()
                conn.send_failed()
        if self._buf:
            conn.receive_data(self._buf)
        if self._eof:
            conn.receive_data(b"")
        self._buf, self._cycle, self._sent = b"", [], None
        return conn

    def _begin_plain(self, trailing: bytes, closed: bool, step: int) -> None:
        """Leave h11 at the end of a cycle: the next one starts on the plain path."""
        self._conn = None
        self._fresh = False
        self._step = step
        self._buf, self._eof = trailing, closed
        self._cycle, self._sent = [], None

    # --- receiving ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer (``b""`` when the peer closed)."""
        conn = self._conn
        if conn is None:
            if not data:
                self._eof = True
                return
            if not self._eof:
                self._buf = self._buf + data if self._buf else data
                return
            conn = self._h11()  # more after the end of file: h11 says what that is
        try:
            conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise _remote(exc) from exc

    def next_event(self) -> Event | Any:
        """The next event parsed from what was received, ``NEED_DATA``, or ``PAUSED``.

        Raises:
            RemoteProtocolError: the peer broke HTTP/1.1; ``status_hint`` is the status
                a server should answer with (400, 431, 501...).
        """
        if self._conn is None:
            event = self._next_plain()
            if event is not None:
                return event
        return self._next_h11()

    def _next_plain(self) -> Event | Any | None:
        """The next event on the plain path, or None when h11 must take over."""
        step = self._step
        buf = self._buf
        if step == _WAIT or step == _SENT:
            if (step == _SENT) is self._server:
                # A client waits for a response only once it sent a request: bytes before
                # that are h11's to judge.
                return None if buf or self._eof else NEED_DATA
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                # h11 refuses a first line starting with a control byte or a space at once,
                # and a buffer over its limit, without waiting for the rest; and it ends a head
                # at a blank line made with bare LFs too: let it.
                if (
                    self._eof
                    or len(buf) > self._max_size
                    or (
                        self._server
                        and (len(buf) > self._max_line or buf.count(b"\n") > self._max_count)
                    )
                    or (buf and buf[0] < 0x21)
                    or b"\n\n" in buf
                    or b"\n\r\n" in buf
                ):
                    return None
                return NEED_DATA
            head = buf[:end]
            if self._server:
                request = codec.parse_request_head(head)
                # The limits checks.py enforces: over them, h11's path says why.
                if (
                    request is None
                    or len(request[2]) > self._max_count
                    or (len(head) > self._max_line and head.find(b"\r\n") > self._max_line)
                ):
                    return None
                event: Request | Response = Request(*request)
            else:
                response = codec.parse_response_head(head)
                if response is None:
                    return None
                status, reason, headers, self._left = response
                event = Response(status, headers, reason)
            if head_size(event) > self._max_size:
                return None
            keep_alive = codec.keep_alive(event.headers)
            if keep_alive is None or (not keep_alive and not self._server):
                return None
            self._cycle.append(buf[: end + 4])
            self._buf = buf[end + 4 :]
            if self._server:
                self._step = _EOM
                self._their_11 = True
                self._their_keep_alive = keep_alive
                self._their_head = event.method == b"HEAD"  # type: ignore[union-attr]
            else:
                self._step = _BODY
            return event
        if step == _EOM:
            self._step = _ANSWER
            return _END
        if step == _BODY:
            left = self._left
            if not left:
                self._step = _DONE_STEP
                return _END
            if not buf:
                return None if self._eof else NEED_DATA
            data = buf[:left] if len(buf) > left else buf
            self._cycle.append(data)
            self._buf = buf[len(data) :]
            self._left = left - len(data)
            return Data(data)
        if step == _DONE_STEP or (step == _ANSWER and self._their_keep_alive):
            if buf:
                return PAUSED
            return None if self._eof else NEED_DATA
        return None  # after a request that closes: h11's rules for what follows

    def _next_h11(self) -> Event | Any:
        conn = self._h11()
        if self._error is not None:
            raise self._error
        try:
            return self._read_h11(conn)
        except RemoteProtocolError as exc:
            # The peer broke HTTP/1.1: nothing it sends counts any more.
            self._error = exc
            raise

    def _read_h11(self, conn: h11.Connection) -> Event | Any:
        # A head is due: keep the bytes it comes in, since h11's parser merges an obs-fold
        # and accepts a bare LF, which checks.py refuses on the bytes themselves.
        head_due = conn.their_state is (_IDLE if self._server else _SEND_RESPONSE)
        # No more than a head within the limits (a body may follow it in the buffer).
        buffer = conn._receive_buffer
        before = bytes(buffer._data[: self._max_size + 4]) if head_due else b""
        total = len(buffer)
        try:
            if head_due and self._server:
                check_partial_head(before, self._max_line, self._max_count)
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            ours = refused_head(before, self._server, self._max_line, self._max_count)
            raise (ours or _remote(exc)) from exc
        kind = type(event)
        if kind is _H11Data:
            return Data(event.data)  # type: ignore[union-attr]
        if kind is _H11End:
            self._chunked = False
            trailers = event.headers  # type: ignore[union-attr]
            return EndOfMessage(pairs(trailers)) if trailers else _END
        if event is NEED_DATA:
            if self._chunked and conn.their_state is _SEND_BODY:
                check_chunked_buffer(conn.trailing_data[0])
            return event
        if kind is _H11Request or kind is _H11Response or kind is _H11Info:
            headers = pairs(event.headers)  # type: ignore[union-attr]
            head = from_h11_head(event, headers)  # type: ignore[arg-type]
            consumed = total - len(buffer)
            if consumed > len(before):
                raise RemoteProtocolError(f"head larger than the {self._max_size} byte limit", 431)
            raw = before[:consumed]
            check_head(head, raw, self._max_size, self._max_line, self._max_count)
            self._chunked = any(name == b"transfer-encoding" for name, _ in headers)
            if type(head) is not Request:
                return head
            self._fresh = False
            self._their_head = head.method == b"HEAD"
            self._their_11 = head.http_version == b"1.1"
            # Any mention of "close" counts: a false match only closes a connection early.
            self._their_keep_alive = self._their_11 and not any(
                name == b"connection" and b"close" in value.lower() for name, value in headers
            )
            return head
        if kind is _H11Closed:
            return _CLOSED
        return event  # PAUSED

    # --- sending ------------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``.

        Raises:
            LocalProtocolError: the event is not valid or not allowed now (a bug on our side).
        """
        if self._conn is None and self._step == _SHUT:
            raise LocalProtocolError("the connection was closed after the last response")
        h11_event = to_h11(event)
        try:
            data = self._h11().send(h11_event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
        return data or b""

    def send_whole(self, head: Response, body: bytes) -> bytes:
        """Bytes for a complete response whose body is in memory.

        ``Content-Length`` is added, and ``Connection: close`` when the peer's request asked
        for it (the connection is then not reusable); the body is left out of the answer to a
        HEAD request. ``head.headers`` must not hold ``Content-Length`` or
        ``Transfer-Encoding``.

        Raises:
            LocalProtocolError: a header is not valid HTTP (a name that is not a token, or a
                value holding CR, LF or NUL), or the message is not allowed now.
        """
        status = head.status_code
        headers = head.headers
        conn = self._conn
        if (
            self._server
            and self._their_11
            # A "Connection" header of our own is left to h11, which tracks what it means.
            and not any(name == b"connection" for name, _ in headers)
            and 200 <= status
            and status not in (204, 304)
            and (
                self._step == _ANSWER
                if conn is None
                # The request is complete (MUST_CLOSE: complete, and it asked to close).
                else conn.our_state is _SEND_RESPONSE
                and (conn.their_state is _DONE or conn.their_state is _MUST_CLOSE)
            )
        ):
            # For a whole response to a complete HTTP/1.1 request there is one framing
            # (Content-Length), which plain.py writes directly (benchmarks/test_micro.py).
            keep_alive = self._their_keep_alive
            written = codec.whole_response_head(status, headers, len(body), keep_alive)
            if written is not None:
                if conn is None:
                    self._step = _DONE_STEP if keep_alive else _SHUT
                    self._cycle = []
                elif keep_alive:
                    # h11 has no way to be told of a response it did not write: the cycle
                    # ends without it, as on the plain path.
                    trailing, closed = conn.trailing_data
                    self._begin_plain(trailing, closed, _DONE_STEP)
                else:
                    # The client asked to close: this connection carries nothing more, and
                    # h11, told nothing of the response, must never write on it again.
                    conn.send_failed()
                return written if self._their_head else written + body
        # The reason phrase as the plain path writes it (codec.status_line).
        reason = head.reason or reason_phrase(status).encode("ascii")
        if status in (204, 304):  # no body; Content-Length is forbidden on 204, wrong on 304
            return self.send(Response(status, headers, reason)) + self.send(_END)
        framed = Response(status, [*headers, (b"content-length", b"%d" % len(body))], reason)
        parts = [self.send(framed)]
        if body and not self._their_head:
            parts.append(self.send(Data(body)))
        parts.append(self.send(_END))
        return b"".join(parts)

    def record_sent(self, prepared: Prepared) -> None:
        """Record that ``prepared.data`` was written, so the state machine moves on.

        Raises:
            LocalProtocolError: a request is not allowed now.
        """
        if self._conn is None:
            if prepared.plain and self._step == _WAIT and not self._server:
                self._step = _SENT
                self._sent = prepared
                return
            if self._step == _SHUT:
                raise LocalProtocolError("the connection was closed after the last response")
        try:
            _record(self._h11(), prepared)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc

    # --- ending -------------------------------------------------------------------------------

    def send_failed(self) -> None:
        """Mark the connection broken after a failed write, so it is never reused."""
        self._h11().send_failed()

    def start_next_cycle(self) -> None:
        """Reset both sides for the next request/response on a kept-alive connection.

        Raises:
            LocalProtocolError: the cycle is not finished on both sides.
        """
        conn = self._conn
        if conn is None and self._step == _DONE_STEP:
            if self._plain:
                self._step = _WAIT
                self._cycle, self._sent = [], None
            else:
                # h11 for every message: a new connection in IDLE is exactly what h11's own
                # start_next_cycle() would leave behind.
                self._h11()
                self._fresh = False
            return
        if self._fresh:
            self._fresh = False
            return
        try:
            self._h11().start_next_cycle()
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
        conn = self._conn
        if self._plain and conn is not None:
            # h11 carried the last cycle; the next one starts on the plain path again.
            trailing, closed = conn.trailing_data
            if not closed:
                self._begin_plain(trailing, closed, _WAIT)

    def __repr__(self) -> str:
        path = " plain" if self._conn is None else ""
        return (
            f"<Driver {self.our_role}{path} our_state={self.our_state.__name__} "
            f"their_state={self.their_state.__name__}>"
        )


def _record(conn: h11.Connection, prepared: Prepared) -> None:
    # h11 has no public way to be told of bytes it did not write; its event processing
    # without the writer is what send() does before encoding. Fall back to send() (the bytes
    # it returns are the same and are dropped) if that ever changes.
    process = getattr(conn, "_process_event", None)
    for event in prepared._events:
        if process is not None:
            process(conn.our_role, event)
        else:  # pragma: no cover - an h11 without the private method
            conn.send(event)
