"""The asyncio adapter both roles share: back pressure and the queue of received body bytes.

``FlowControl`` holds the two pieces of back pressure an asyncio ``Protocol`` needs (stop
reading when the reader lags, wait for the transport to drain when the peer lags).
``BodyQueue`` holds the body bytes received for the message being read until their reader takes
them, pausing the transport above a high-water mark. ``eager_task_starter`` starts tasks that
run their first step at once where Python has them. Nothing here parses HTTP or knows a role.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from . import limits
from .errors import ClientDisconnect

__all__ = ["BodyQueue", "FlowControl", "TaskStarter", "eager_task_starter"]

#: Makes a task of a coroutine.
TaskStarter = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


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


class BodyQueue:
    """Received body bytes waiting for their reader, with read back pressure.

    Reading from the transport pauses while more than ``high_water`` bytes wait and resumes as
    the reader takes them. ``read_chunk()`` waits for the next piece; before each wait it calls
    ``on_wait`` (the server sends ``100 Continue`` there: only once the body is really wanted).

    Args:
        flow: the transport's back pressure.
        on_wait: called before ``read_chunk()`` waits for bytes.
        high_water: buffered bytes above which reading pauses.
    """

    __slots__ = (
        "_flow",
        "_on_wait",
        "_high",
        "_chunks",
        "buffered",
        "is_complete",
        "_lost",
        "_waiter",
        "_on_lost",
    )

    def __init__(
        self,
        flow: FlowControl,
        on_wait: Callable[[], None] | None = None,
        high_water: int = limits.READ_HIGH_WATER,
    ) -> None:
        self._flow = flow
        self._on_wait = on_wait
        self._high = high_water
        self._chunks: deque[bytes] = deque()
        #: Bytes received and not yet taken.
        self.buffered = 0
        #: True once the whole body was received (it may not all be taken yet).
        self.is_complete = False
        self._lost: str | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_lost: Callable[[], None] | None = None

    def feed(self, data: bytes) -> None:
        """Queue a received piece; pause reading when the reader lags."""
        self._chunks.append(data)
        self.buffered += len(data)
        if self.buffered > self._high:
            self._flow.pause_reading()
        self.wake()

    def finish(self) -> None:
        """Mark the body complete."""
        self.is_complete = True
        self.wake()

    def lose(self, reason: str) -> None:
        """The body will not arrive whole: a reader wanting more gets ``ClientDisconnect``.

        The first reason given is kept (a connection closed after a timeout reports the
        timeout, not the close).
        """
        if self._lost is None:
            self._lost = reason
        self.wake()
        if self._on_lost is not None:
            callback, self._on_lost = self._on_lost, None
            callback()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the connection is lost (now, if it already was).

        One callback per queue: the ASGI adapter's ``http.disconnect`` comes from here.
        """
        if self._lost is not None:
            callback()
        else:
            self._on_lost = callback

    @property
    def is_waiting(self) -> bool:
        """True while a reader waits in ``read_chunk()`` for bytes not received yet."""
        return self._waiter is not None

    def wake(self) -> None:
        """Wake a reader waiting in ``read_chunk()``."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pop(self) -> bytes | None:
        """The next piece, ``b""`` once the body is complete and taken, ``None`` if none yet."""
        if self._chunks:
            chunk = self._chunks.popleft()
            self.buffered -= len(chunk)
            if self.buffered <= self._high:
                self._flow.resume_reading()
            return chunk
        return b"" if self.is_complete else None

    def take_all(self) -> list[bytes]:
        """Every piece received so far (possibly none); resumes reading if it was paused."""
        chunks = list(self._chunks)
        self._chunks.clear()
        if self.buffered > self._high:
            self._flow.resume_reading()
        self.buffered = 0
        return chunks

    def clear(self) -> None:
        """Empty the queue for the next message on the same connection."""
        self._chunks.clear()
        self.buffered = 0
        self.is_complete = False

    async def read_chunk(self) -> bytes:
        """The next piece of the body, waiting for it; ``b""`` once it is complete.

        Raises:
            ClientDisconnect: the body will not arrive whole (the connection was lost, or
                the server gave up on it); also a ``ConnectionResetError``.
        """
        while True:
            chunk = self.pop()
            if chunk is not None:
                return chunk
            if self._lost is not None:
                raise ClientDisconnect(self._lost)
            if self._on_wait is not None:
                self._on_wait()
            self._flow.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def __repr__(self) -> str:
        state = "complete" if self.is_complete else "receiving"
        return f"<BodyQueue {state} buffered={self.buffered}>"


def eager_task_starter(loop: asyncio.AbstractEventLoop) -> TaskStarter | None:
    """What starts tasks eagerly on ``loop``: Python 3.12+'s eager task factory.

    A task it starts runs its first step before the call returns, so a coroutine that ends
    without waiting has ended, and costs no turn of the loop. ``None`` before Python 3.12, or
    when the application set a task factory on the loop (which is then left to decide).
    """
    eager = getattr(asyncio, "eager_task_factory", None)
    if eager is None or loop.get_task_factory() is not None:
        return None
    return functools.partial(eager, loop)
