"""Translation between our events and h11's, and requests encoded once.

The one module besides the driver that builds h11 objects: ``to_h11`` makes h11's event for
one of ours (h11 validates it as it is made), ``check``
validates a head before it is sent, and ``prepare`` encodes a whole request once for a client
that sends it many times.
"""

from __future__ import annotations

import h11

from ..errors import LocalProtocolError
from .events import (
    Data,
    EndOfMessage,
    Event,
    HeaderList,
    InformationalResponse,
    Request,
    Response,
)

__all__ = ["Prepared", "check", "from_h11_head", "prepare", "to_h11"]

H11_END = h11.EndOfMessage()
_H11Request, _H11Response, _H11Info = h11.Request, h11.Response, h11.InformationalResponse
_H11Data, _H11End = h11.Data, h11.EndOfMessage


def to_h11(event: Event) -> h11.Event:
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
            return _H11End(headers=trailers) if trailers else H11_END
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


def from_h11_head(
    event: h11.Request | h11.Response | h11.InformationalResponse, headers: HeaderList
) -> Request | Response:
    """Our head for h11's ``event``; ``headers`` are its (lowercase name, value) pairs."""
    if type(event) is _H11Request:
        return Request(event.method, event.target, headers, event.http_version)
    kind = Response if type(event) is _H11Response else InformationalResponse
    return kind(event.status_code, headers, event.reason, event.http_version)  # type: ignore[union-attr]


def check(head: Request | Response) -> None:
    """Check that ``head`` is valid HTTP/1.1, before it is sent; it is not checked again.

    Raises:
        LocalProtocolError: a header name is not a token, or a value holds CR, LF or NUL.
    """
    head._wire = to_h11(head)


class Prepared:
    """A whole request encoded once, to be written many times (see ``prepare``).

    Attributes:
        data: the bytes to write.
        plain: the answer may be read on the plain path: the request keeps the connection
            alive, proposes no protocol switch and is not HEAD.
    """

    __slots__ = ("data", "plain", "_events")

    def __init__(self, data: bytes, events: tuple[h11.Event, ...], plain: bool) -> None:
        self.data = data
        self.plain = plain
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
    events: list[h11.Event] = [to_h11(head)]
    if body:
        events.append(_H11Data(data=body))
    events.append(H11_END)
    conn = h11.Connection(h11.CLIENT)
    try:
        data = b"".join(conn.send(event) or b"" for event in events)
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(str(exc), exc.error_status_hint) from exc
    # The answer is read as any response is unless the request was HEAD (no body whatever
    # the headers say) or h11 left our side anything but DONE: a request that closes the
    # connection (MUST_CLOSE) or may switch protocols (CONNECT, Upgrade).
    plain = head.method != b"HEAD" and conn.our_state is h11.DONE
    return Prepared(data, tuple(events), plain)


def announced_left(conn: object) -> int:
    """Body bytes an h11 connection was told to expect and has not read (0 without a body)."""
    reader = getattr(conn, "_reader", None)
    # h11's body readers keep what is left of the length or of the chunk in these fields.
    left = getattr(reader, "_remaining", None)
    if left is None:
        left = getattr(reader, "_bytes_in_chunk", 0)
    return left if isinstance(left, int) else 0
