"""How a ``Response`` becomes bytes on the connection: the server's one response writer.

Whole responses whose body is in memory go out in one write through the driver (its plain path
frames the common case); streamed, large and file bodies go out in pieces with write back
pressure between them. Also here: the 500 substitute for a failing handler, the answer to
malformed input, and the ``Date`` clock. Knows the driver and the transport's flow control,
not the connection that owns them (``Output`` is all it asks for).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Protocol

from .. import limits
from ..errors import LocalProtocolError
from ..http11 import SEND_RESPONSE, Data, Driver, EndOfMessage
from ..http11 import Response as Head
from ..messages import Request, Response, reason_phrase
from ..transport import FlowControl

__all__ = ["Clock", "Output", "SERVER_HEADER", "error_answer", "internal_error", "send_response"]

log = logging.getLogger("framework.server")

SERVER_HEADER = (b"server", b"framework")
# In-memory bodies up to this size go out with their head in one write (copied once to join
# them); larger ones are written as they are, in pieces of WRITE_CHUNK_BYTES (_send_stream).
WHOLE_WRITE_MAX = 64 * 1024
_END = EndOfMessage()


class Clock:
    """The ``Date`` header value, formatted once a second rather than per response."""

    value: bytes = formatdate(usegmt=True).encode("ascii")

    @classmethod
    def tick(cls) -> None:
        """Format the current time; the server calls this once a second."""
        cls.value = formatdate(usegmt=True).encode("ascii")


class Output(Protocol):
    """Where a response goes: the connection's driver, its flow control, and its writer."""

    driver: Driver
    flow: FlowControl

    def write(self, data: bytes) -> None:
        """Write ``data`` to the transport (nothing once the connection is closed)."""

    async def drain(self) -> None:
        """Wait until the client takes more bytes (within the write timeout)."""


def internal_error(request: Request) -> Response:
    """The response that stands in for a handler that failed; logs the error being handled."""
    log.exception("unhandled error in handler for %s %s", request.method, request.path)
    return Response("Internal Server Error", status=500)


async def send_response(out: Output, request: Request, response: Response, close: bool) -> int:
    """Write ``response`` to ``request``; return the status actually sent.

    ``close`` adds ``Connection: close`` (RFC 9112 9.6: the connection ends after this
    response). A response the handler made invalid (a header value with CR or LF, a bad name)
    is answered 500 instead, when nothing was written yet.

    Raises:
        ConnectionError: the connection was lost while writing.
        Exception: the body iterator failed after the head was sent.
    """
    if response.body_iterator is None and len(response.body) <= WHOLE_WRITE_MAX:
        return _send_whole(out, request, response, close)
    return await _send_stream(out, request, response, close)


def _headers(response: Response, close: bool) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The headers to send, and whether the handler framed the body itself.

    ``Date`` and ``Server`` are added unless the handler set them (RFC 9110 6.6.1, 10.2.4);
    ``Content-Length`` is left to the writer.
    """
    headers = response.headers.raw
    names = {name for name, _ in headers}
    extra = []
    if b"date" not in names:
        extra.append((b"date", Clock.value))
    if b"server" not in names:
        extra.append(SERVER_HEADER)
    if close:
        extra.append((b"connection", b"close"))
    framed = b"content-length" in names or b"transfer-encoding" in names
    return (headers + extra if extra else headers), framed


def _send_whole(out: Output, request: Request, response: Response, close: bool) -> int:
    headers, framed = _headers(response, close)
    driver = out.driver
    try:
        if framed:
            # The handler set Content-Length or Transfer-Encoding itself: h11 checks it.
            data = driver.send(Head(response.status, headers, response.reason.encode("latin-1")))
            if response.body and request.method != "HEAD":
                data += driver.send(Data(response.body))
            data += driver.send(_END)
        else:
            data = driver.send_whole(Head(response.status, headers), response.body)
    except LocalProtocolError as exc:
        return _send_error_instead(out, request, exc, close)
    out.write(data)
    return response.status


def _send_error_instead(out: Output, request: Request, exc: Exception, close: bool) -> int:
    # The handler's status or headers are not valid HTTP (CR/LF in a value, a bad name),
    # found before anything was written: answer 500 rather than leave the client waiting.
    if out.driver.our_state is not SEND_RESPONSE:
        raise exc  # no response can be sent any more: the connection is cut
    log.error("invalid response for %s %s: %s", request.method, request.path, exc)
    return _send_whole(out, request, Response("Internal Server Error", status=500), close)


async def _send_stream(out: Output, request: Request, response: Response, close: bool) -> int:
    """Write a response in pieces, waiting for the client between them; return the status.

    The pieces come from the body iterator, or are slices of a large in-memory body, so
    that no more than a piece waits in the transport, encrypted, at a time.
    """
    driver = out.driver
    iterator = response.body_iterator
    headers, framed = _headers(response, close)
    if iterator is None and not framed:
        headers = [*headers, (b"content-length", b"%d" % len(response.body))]
    head = Head(response.status, headers, response.reason.encode("latin-1"))
    try:
        out.write(driver.send(head))
    except LocalProtocolError as exc:
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        return _send_error_instead(out, request, exc, close)
    if iterator is None:
        if request.method != "HEAD":
            body = response.body
            for start in range(0, len(body), limits.WRITE_CHUNK_BYTES):
                out.write(driver.send(Data(body[start : start + limits.WRITE_CHUNK_BYTES])))
                await out.drain()
        out.write(driver.send(_END))
        return response.status
    try:
        if request.method != "HEAD":
            async for chunk in iterator:
                if chunk:
                    out.write(driver.send(Data(chunk)))
                    # Write back pressure: wait while the client is slower than us.
                    await out.drain()
        out.write(driver.send(_END))
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    return response.status


async def end_exchange(on_end: Callable[[], Awaitable[None]], request: Request) -> None:
    """Await ``Response.on_end``: what the handler does once its answer began; log a failure."""
    try:
        await on_end()
    except Exception:
        log.exception("error after the response to %s %s", request.method, request.path)


def error_answer(driver: Driver, status: int, extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """The bytes of a short plain-text answer to malformed input, which closes the connection.

    Raises:
        LocalProtocolError: no response can be sent now (one was already under way).
    """
    body = f"{status} {reason_phrase(status)}\n".encode("ascii")
    headers = [
        (b"date", Clock.value),
        SERVER_HEADER,
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
        *extra,
    ]
    if status == 405:
        # RFC 9110 15.5.6: a 405 names the methods allowed. Refused before routing (CONNECT),
        # the target is no resource of this server: it allows none.
        headers.append((b"allow", b""))
    head = Head(status, headers, reason_phrase(status).encode("ascii"))
    return driver.send(head) + driver.send(Data(body)) + driver.send(_END)
