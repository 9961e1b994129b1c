"""The HTTP/1.1 driver both roles share: bytes in, our events out, and no I/O.

``Driver`` wraps one ``h11.Connection``. The owner feeds it received bytes and gets our events
(``events.py``) back; it hands it events and gets the bytes to write. h11 parses and frames;
the driver translates, applies the head checks h11 leaves out (``checks.py``), and writes the
plain messages ``plain.py`` frames itself. Nothing here knows about sockets, routes or TLS,
and nothing above this package sees an h11 object.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import h11

from ..errors import LocalProtocolError, RemoteProtocolError
from . import plain
from .checks import check_head_size
from .events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HeaderList,
    InformationalResponse,
    Request,
    Response,
)

__all__ = ["NEED_DATA", "PAUSED", "Driver", "Prepared", "Role", "State", "check", "prepare"]

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
_H11_END = h11.EndOfMessage()
_H11Request, _H11Response, _H11Info = h11.Request, h11.Response, h11.InformationalResponse
_H11Data, _H11End, _H11Closed = h11.Data, h11.EndOfMessage, h11.ConnectionClosed


def _pairs(headers: Any) -> HeaderList:
    # h11 keeps (raw name, lowercase name, value) triples; take the last two without copying
    # the values. Its Headers is a Sequence whose iteration goes through __getitem__.
    return [(name, value) for _, name, value in headers._full_items]


def _to_h11(event: Event) -> h11.Event:
    """Our event as h11's, validated by h11 as it is made (once: see ``check``)."""
    kind = type(event)
    wire = getattr(event, "_wire", None)
    if wire is not None:
        return wire  # type: ignore[no-any-return]
    try:
        if kind is Data:
            return _H11Data(data=event.data)  # type: ignore[union-attr]
        if kind is EndOfMessage:
            trailers = event.headers  # type: ignore[union-attr]
            return _H11End(headers=trailers) if trailers else _H11_END
        if kind is Response:
            return _H11Response(
                status_code=event.status_code,  # type: ignore[union-attr]
                headers=event.headers,  # type: ignore[union-attr]
                reason=event.reason,  # type: ignore[union-attr]
            )
        if kind is Request:
            return _H11Request(
                method=event.method,  # type: ignore[union-attr]
                target=event.target,  # type: ignore[union-attr]
                headers=event.headers,  # type: ignore[union-attr]
            )
        if kind is InformationalResponse:
            return _H11Info(
                status_code=event.status_code,  # type: ignore[union-attr]
                headers=event.headers,  # type: ignore[union-attr]
                reason=event.reason,  # type: ignore[union-attr]
            )
    except h11.LocalProtocolError as exc:  # h11 validates headers as the event is made
        raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
    raise TypeError(f"cannot send {event!r}: not an HTTP/1.1 event")


def check(head: Request | Response) -> None:
    """Check that ``head`` is valid HTTP/1.1, before it is sent; it is not checked again.

    Raises:
        LocalProtocolError: a header name is not a token, or a value holds CR, LF or NUL.
    """
    head._wire = _to_h11(head)


class Prepared:
    """A whole message encoded once, to be written many times (see ``prepare``).

    Attributes:
        data: the bytes to write.
    """

    __slots__ = ("data", "_events")

    def __init__(self, data: bytes, events: tuple[h11.Event, ...]) -> None:
        self.data = data
        self._events = events

    def __repr__(self) -> str:
        return f"<Prepared {len(self.data)} bytes>"


def prepare(head: Request, body: bytes = b"") -> Prepared:
    """A whole request (head, then ``body``) encoded and checked by h11 once.

    The head's own headers must frame the body (``Content-Length``). The client writes
    ``data`` and tells its driver with ``record_sent()``, so a request sent many times is
    checked and encoded once instead of every time.

    Raises:
        LocalProtocolError: the request is not valid HTTP/1.1 (a bad header, a body that
            does not match its framing).
    """
    events: list[h11.Event] = [_to_h11(head)]
    if body:
        events.append(_H11Data(data=body))
    events.append(_H11_END)
    conn = h11.Connection(h11.CLIENT)
    try:
        data = b"".join(conn.send(event) or b"" for event in events)
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
    return Prepared(data, tuple(events))


class Driver:
    """One HTTP/1.1 connection's state machine, in either role, with no I/O.

    Args:
        our_role: ``"client"`` or ``"server"``.
        max_incomplete_event_size: the most bytes a message head may take; more is a
            ``RemoteProtocolError`` with status hint 431.
    """

    __slots__ = (
        "_conn",
        "_h11_role",
        "our_role",
        "_max_size",
        "_fresh",
        "_their_11",
        "_their_keep_alive",
        "_their_head",
    )

    def __init__(self, our_role: Role, max_incomplete_event_size: int = 16 * 1024) -> None:
        self._h11_role: State
        if our_role == "server":
            self._h11_role = h11.SERVER
        elif our_role == "client":
            self._h11_role = h11.CLIENT
        else:
            raise ValueError(f"our_role must be 'client' or 'server', not {our_role!r}")
        self.our_role = our_role
        self._max_size = max_incomplete_event_size
        self._conn = h11.Connection(
            self._h11_role, max_incomplete_event_size=max_incomplete_event_size
        )
        # True after a message framed here began a new cycle by itself (_begin_fresh_cycle).
        self._fresh = False
        # What the peer's request allows, noted when it arrives (server role).
        self._their_11 = False
        self._their_keep_alive = False
        self._their_head = False

    # --- state --------------------------------------------------------------------------------

    @property
    def our_state(self) -> State:
        """Our side's state (``IDLE``, ``SEND_BODY``, ``DONE``, ...)."""
        return self._conn.our_state

    @property
    def their_state(self) -> State:
        """The peer's state."""
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
        """Bytes received but not yet parsed, and whether the peer closed after them.

        After ``101 Switching Protocols`` these are the first bytes of the new protocol.
        """
        return self._conn.trailing_data

    # --- receiving ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer (``b""`` when the peer closed)."""
        try:
            self._conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), exc.error_status_hint) from exc

    def next_event(self) -> Event | Any:
        """The next event parsed from what was received, ``NEED_DATA``, or ``PAUSED``.

        Raises:
            RemoteProtocolError: the peer broke HTTP/1.1; ``status_hint`` is the status
                a server should answer with (400, 431, 501...).
        """
        try:
            event = self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), exc.error_status_hint) from exc
        kind = type(event)
        if kind is _H11Data:
            return Data(event.data)  # type: ignore[union-attr]
        if kind is _H11End:
            trailers = event.headers  # type: ignore[union-attr]
            return EndOfMessage(_pairs(trailers)) if trailers else _END
        if kind is _H11Request:
            request = Request(
                event.method,  # type: ignore[union-attr]
                event.target,  # type: ignore[union-attr]
                _pairs(event.headers),  # type: ignore[union-attr]
                event.http_version,  # type: ignore[union-attr]
            )
            check_head_size(request, self._max_size)
            self._fresh = False
            self._their_head = request.method == b"HEAD"
            self._their_11 = request.http_version == b"1.1"
            # Any mention of "close" counts: a false match only closes a connection early.
            self._their_keep_alive = self._their_11 and not any(
                name == b"connection" and b"close" in value.lower()
                for name, value in request.headers
            )
            return request
        if kind is _H11Response or kind is _H11Info:
            head = (Response if kind is _H11Response else InformationalResponse)(
                event.status_code,  # type: ignore[union-attr]
                _pairs(event.headers),  # type: ignore[union-attr]
                event.reason,  # type: ignore[union-attr]
                event.http_version,  # type: ignore[union-attr]
            )
            check_head_size(head, self._max_size)
            return head
        if kind is _H11Closed:
            return _CLOSED
        return event  # NEED_DATA or PAUSED

    # --- sending ------------------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """Bytes to write for ``event``.

        Raises:
            LocalProtocolError: the event is not valid or not allowed now (a bug on our side).
        """
        try:
            data = self._conn.send(_to_h11(event))
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
        return data or b""

    def send_whole(self, head: Response, body: bytes) -> bytes:
        """Bytes for a complete message whose body is in memory.

        ``Content-Length`` is added, and ``Connection: close`` when the peer's request asked
        for it (the connection is then not reusable); the body is left out of the answer to a
        HEAD request. ``head.headers`` must not hold ``Content-Length`` or
        ``Transfer-Encoding``.

        Raises:
            LocalProtocolError: a header is not valid HTTP (a name that is not a token, or a
                value holding CR, LF or NUL), or the message is not allowed now.
        """
        conn = self._conn
        status = head.status_code
        headers = head.headers
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
            # For a whole response to a complete HTTP/1.1 request there is one framing
            # (Content-Length); plain.py writes it directly, since producing it through h11's
            # three events is the largest single cost of a small response
            # (benchmarks/test_micro.py).
            keep_alive = self._their_keep_alive
            written = plain.whole_response_head(status, headers, len(body), keep_alive)
            if written is not None:
                if keep_alive:
                    self._begin_fresh_cycle()
                else:
                    # The client asked to close: this connection carries nothing more, and
                    # h11, told nothing of the response, must never write on it again.
                    conn.send_failed()
                return written if self._their_head else written + body
        framed = Response(status, [*headers, (b"content-length", b"%d" % len(body))], head.reason)
        parts = [self.send(framed)]
        if body and not self._their_head:
            parts.append(self.send(Data(body)))
        parts.append(self.send(_END))
        return b"".join(parts)

    def record_sent(self, prepared: Prepared) -> None:
        """Record that ``prepared.data`` was written, so the state machine moves on.

        Raises:
            LocalProtocolError: a message is not allowed now.
        """
        conn = self._conn
        # h11 has no public way to be told of bytes it did not write; its event processing
        # without the writer is what send() does before encoding. Fall back to send() (the
        # bytes it returns are the same and are dropped) if that ever changes.
        process = getattr(conn, "_process_event", None)
        try:
            for event in prepared._events:
                if process is not None:
                    process(conn.our_role, event)
                else:  # pragma: no cover - an h11 without the private method
                    conn.send(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc), exc.error_status_hint) from exc

    def _begin_fresh_cycle(self) -> None:
        """Start the next cycle on a new h11 connection, carrying over unparsed bytes.

        h11 has no way to be told a response was written without it; a new connection in
        the IDLE state is exactly what start_next_cycle() would leave behind.
        """
        trailing, closed = self._conn.trailing_data
        conn = self._conn = h11.Connection(self._h11_role, max_incomplete_event_size=self._max_size)
        if trailing:
            conn.receive_data(trailing)
        if closed:
            conn.receive_data(b"")
        self._fresh = True

    # --- ending -------------------------------------------------------------------------------

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
