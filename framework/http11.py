"""The HTTP/1.1 driver both roles share: bytes in, h11 events out, and flow control.

``Driver`` wraps one ``h11.Connection`` and does no I/O: the owner feeds it received bytes and
sends it events, getting bytes back to write. ``FlowControl`` holds the two pieces of back
pressure an asyncio ``Protocol`` needs (stop reading when the reader lags, wait for the transport
to drain when the peer lags). Nothing here knows about routes, TLS or which role it plays beyond
the role it is given.
"""

from __future__ import annotations

import asyncio
import re
from http import HTTPStatus
from typing import Literal

import h11

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = ["Driver", "FlowControl", "NEED_DATA", "PAUSED"]

#: ``next_event()`` returns this when it needs more bytes from the peer.
NEED_DATA = h11.NEED_DATA
#: ``next_event()`` returns this when the peer started a new message before this cycle ended
#: (pipelining): call ``start_next_cycle()`` once our side is done.
PAUSED = h11.PAUSED

Role = Literal["client", "server"]

# RFC 9110 token: what a header name may be made of.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# Header names already checked against _TOKEN; responses reuse a handful of names, so a set
# lookup replaces the regex after the first time. Bounded so hostile input cannot grow it.
_known_names: set[bytes] = set()
_KNOWN_NAMES_MAX = 1024
_status_lines: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _status_lines[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")
    return line


def _names_are_tokens(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:
        if name not in _known_names:
            if not _TOKEN.fullmatch(name):
                return False
            if len(_known_names) < _KNOWN_NAMES_MAX:
                _known_names.add(name)
    return True


_HEADS = (h11.Request, h11.Response, h11.InformationalResponse)


def _head_size(event: h11.Request | h11.Response | h11.InformationalResponse) -> int:
    """The size of a message head on the wire (give or take optional whitespace)."""
    if isinstance(event, h11.Request):
        size = len(event.method) + len(event.target) + 12  # "M T HTTP/1.1\r\n"
    else:
        size = len(event.reason) + 15  # "HTTP/1.1 200 R\r\n"
    # h11's Headers is a Sequence whose iteration goes through __getitem__; its list is direct.
    for _, name, value in event.headers._full_items:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
    return size + 2


class Driver:
    """One HTTP/1.1 connection's state machine, in either role, with no I/O.

    Args:
        our_role: ``"client"`` or ``"server"``.
        max_incomplete_event_size: the most bytes a message head may take; more is a
            ``RemoteProtocolError`` with status hint 431.
    """

    __slots__ = (
        "_conn", "our_role", "_max_size", "_fresh", "_their_11", "_their_keep_alive", "_their_head"
    )

    def __init__(self, our_role: Role, max_incomplete_event_size: int = 16 * 1024) -> None:
        role: type[h11._util.Sentinel]
        if our_role == "server":
            role = h11.SERVER
        elif our_role == "client":
            role = h11.CLIENT
        else:
            raise ValueError(f"our_role must be 'client' or 'server', not {our_role!r}")
        self.our_role = our_role
        self._max_size = max_incomplete_event_size
        self._conn = h11.Connection(role, max_incomplete_event_size=max_incomplete_event_size)
        # True after send_whole_response() began a new cycle by itself (see there).
        self._fresh = False
        # What the peer's request allows, noted when it arrives (server role).
        self._their_11 = False
        self._their_keep_alive = False
        self._their_head = False

    @property
    def our_state(self) -> type[h11._util.Sentinel]:
        """Our side's h11 state (``h11.IDLE``, ``h11.SEND_BODY``, ``h11.DONE``, ...)."""
        return self._conn.our_state

    @property
    def their_state(self) -> type[h11._util.Sentinel]:
        """The peer's h11 state."""
        return self._conn.their_state

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """True when the client sent ``Expect: 100-continue`` and waits for our go-ahead."""
        return self._conn.they_are_waiting_for_100_continue

    @property
    def is_reusable(self) -> bool:
        """True when both sides finished a message and the connection may carry another."""
        if self._fresh:
            return True
        return self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes received but not yet parsed, and whether the peer closed after them."""
        return self._conn.trailing_data

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer (``b""`` when the peer closed)."""
        try:
            self._conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), exc.error_status_hint) from exc

    def next_event(self) -> h11.Event | type[h11._util.Sentinel]:
        """The next event parsed from what was received, ``NEED_DATA``, or ``PAUSED``.

        Raises:
            RemoteProtocolError: the peer broke HTTP/1.1; ``status_hint`` is the status
                a server should answer with (400, 431, 501...).
        """
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), exc.error_status_hint) from exc
        if type(event) in _HEADS and _head_size(event) > self._max_size:  # type: ignore[arg-type]
            # h11 enforces its limit only on a head still incomplete in its buffer: a larger
            # head arriving whole in one read (one batch of TLS records) would pass unchecked.
            raise RemoteProtocolError(
                f"message head larger than the {self._max_size} byte limit", 431
            )
        if type(event) is h11.Request:
            self._fresh = False
            self._their_head = event.method == b"HEAD"
            self._their_11 = event.http_version == b"1.1"
            # Any mention of "close" counts: a false match only closes a connection early.
            self._their_keep_alive = self._their_11 and not any(
                name == b"connection" and b"close" in value.lower()
                for _, name, value in event.headers._full_items
            )
        return event

    def send(self, event: h11.Event) -> bytes:
        """Bytes to write for ``event``.

        Raises:
            LocalProtocolError: the event is not allowed here (a framing bug on our side).
        """
        try:
            data = self._conn.send(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
        return data or b""

    def send_whole_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> bytes:
        """Bytes for a complete response whose body is in memory (server role).

        ``Content-Length`` is added, and ``Connection: close`` when the request asked for it
        (the connection is then not reusable); the body is left out for a HEAD request.
        ``headers`` must not hold ``Content-Length`` or ``Transfer-Encoding``.

        Raises:
            LocalProtocolError: a header is not valid HTTP (a name that is not a token, or a
                value holding CR, LF or NUL), or a response is not allowed now.
        """
        conn = self._conn
        if (
            self._their_11
            # A "Connection" header of our own is left to h11, which tracks what it means.
            and not any(name == b"connection" for name, _ in headers)
            and conn.our_state is h11.SEND_RESPONSE
            # The request is complete (MUST_CLOSE: complete, and it asked to close).
            and (conn.their_state is h11.DONE or conn.their_state is h11.MUST_CLOSE)
            and 200 <= status
            and status not in (204, 304)
        ):
            # The common case, written directly: for a whole response to a complete HTTP/1.1
            # request there is one framing (Content-Length), and producing it through h11's
            # three events costs ~40 us against ~3 us here, the largest single cost of a small
            # response (benchmarks/README.md). h11 still parses every request and frames every
            # other response (streams, HTTP/1.0, errors, 1xx/204/304).
            keep_alive = self._their_keep_alive
            parts = [_status_line(status)]
            for name, value in headers:
                parts.append(name + b": " + value + b"\r\n")
            if not keep_alive:
                parts.append(b"connection: close\r\n")
            parts.append(b"content-length: %d\r\n\r\n" % len(body))
            head = b"".join(parts)
            # The status line, one per header, content-length and the blank line (and the
            # connection header): any other CR or LF came from a header and would split it, so
            # h11 must refuse it below.
            lines = len(headers) + 3 + (not keep_alive)
            if (
                head.count(b"\n") == lines
                and head.count(b"\r") == lines
                and b"\0" not in head
                and _names_are_tokens(headers)
            ):
                if keep_alive:
                    self._begin_fresh_cycle()
                else:
                    # The client asked to close: this connection carries nothing more, and
                    # h11, told nothing of the response, must never write on it again.
                    conn.send_failed()
                return head if self._their_head else head + body
        try:
            response = h11.Response(
                status_code=status,
                headers=[*headers, (b"content-length", b"%d" % len(body))],
                reason=_status_line(status)[13:-2],
            )
        except h11.LocalProtocolError as exc:  # h11 validates headers as the event is made
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
        events: list[h11.Event] = [response]
        if body and not self._their_head:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        return b"".join([self.send(event) for event in events])

    def _begin_fresh_cycle(self) -> None:
        """Start the next cycle on a new h11 connection, carrying over unparsed bytes.

        h11 has no way to be told a response was written without it; a new connection in
        the IDLE state is exactly what start_next_cycle() would leave behind.
        """
        trailing, closed = self._conn.trailing_data
        conn = self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_size)
        if trailing:
            conn.receive_data(trailing)
        if closed:
            conn.receive_data(b"")
        self._fresh = True

    def send_failed(self) -> None:
        """Mark the connection broken after a failed write, so it is never reused."""
        self._conn.send_failed()

    def start_next_cycle(self) -> None:
        """Reset both sides for the next request/response on a kept-alive connection."""
        if self._fresh:
            self._fresh = False
            return
        self._conn.start_next_cycle()

    def __repr__(self) -> str:
        return (
            f"<Driver {self.our_role} our_state={self._conn.our_state.__name__} "
            f"their_state={self._conn.their_state.__name__}>"
        )


class FlowControl:
    """Back pressure for one asyncio transport, in both directions.

    Writing: the protocol forwards ``pause_writing``/``resume_writing`` here, and a writer
    awaits ``drain()`` after each write, which returns at once unless the transport's buffer is
    above its high-water mark. Reading: ``pause_reading``/``resume_reading`` are idempotent
    wrappers, so the consumer of received data can call them freely.
    """

    __slots__ = ("_transport", "_write_paused", "_drain_waiter", "_read_paused", "_closed")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._closed = False

    @property
    def is_write_paused(self) -> bool:
        """True while the transport's write buffer is above its high-water mark."""
        return self._write_paused

    @property
    def is_read_paused(self) -> bool:
        """True while reading from the transport is paused."""
        return self._read_paused

    def pause_writing(self) -> None:
        """Called by the protocol when the transport asks it to stop writing."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """Called by the protocol when the transport has drained."""
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Wake a waiting writer with ``ConnectionError`` once the transport is gone."""
        self._closed = True
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("connection lost") if exc is None else exc)

    async def drain(self) -> None:
        """Wait until the transport can take more bytes.

        Raises:
            ConnectionError: the connection was lost before or while waiting.
        """
        if self._closed:
            raise ConnectionResetError("connection lost")
        if not self._write_paused:
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drain_waiter)

    def pause_reading(self) -> None:
        """Stop reading from the transport until ``resume_reading()``."""
        if not self._read_paused and not self._closed:
            self._read_paused = True
            self._transport.pause_reading()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        """Read from the transport again."""
        if self._read_paused and not self._closed:
            self._read_paused = False
            self._transport.resume_reading()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (
            f"<FlowControl write_paused={self._write_paused} read_paused={self._read_paused}"
            f" closed={self._closed}>"
        )
