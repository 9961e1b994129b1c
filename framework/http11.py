"""The HTTP/1.1 driver both roles share: bytes in, h11 events out, and flow control.

``Driver`` wraps one ``h11.Connection`` and does no I/O: the owner feeds it received bytes and
sends it events, getting bytes back to write. ``FlowControl`` holds the two pieces of back
pressure an asyncio ``Protocol`` needs (stop reading when the reader lags, wait for the transport
to drain when the peer lags). Nothing here knows about routes, TLS or which role it plays beyond
the role it is given.
"""

from __future__ import annotations

import asyncio
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


class Driver:
    """One HTTP/1.1 connection's state machine, in either role, with no I/O.

    Args:
        our_role: ``"client"`` or ``"server"``.
        max_incomplete_event_size: the most bytes a message head may take; more is a
            ``RemoteProtocolError`` with status hint 431.
    """

    __slots__ = ("_conn", "our_role")

    def __init__(self, our_role: Role, max_incomplete_event_size: int = 16 * 1024) -> None:
        if our_role == "server":
            role = h11.SERVER
        elif our_role == "client":
            role = h11.CLIENT
        else:
            raise ValueError(f"our_role must be 'client' or 'server', not {our_role!r}")
        self.our_role = our_role
        self._conn = h11.Connection(role, max_incomplete_event_size=max_incomplete_event_size)

    @property
    def our_state(self) -> type[h11._state._SentinelBase]:
        """Our side's h11 state (``h11.IDLE``, ``h11.SEND_BODY``, ``h11.DONE``, ...)."""
        return self._conn.our_state

    @property
    def their_state(self) -> type[h11._state._SentinelBase]:
        """The peer's h11 state."""
        return self._conn.their_state

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """True when the client sent ``Expect: 100-continue`` and waits for our go-ahead."""
        return self._conn.they_are_waiting_for_100_continue

    @property
    def is_reusable(self) -> bool:
        """True when both sides finished a message and the connection may carry another."""
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
            return self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), exc.error_status_hint) from exc

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

    def send_failed(self) -> None:
        """Mark the connection broken after a failed write, so it is never reused."""
        self._conn.send_failed()

    def start_next_cycle(self) -> None:
        """Reset both sides for the next request/response on a kept-alive connection."""
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
