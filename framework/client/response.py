"""``ClientResponse``: a response as the client received it.

This module owns reading the body (whole in ``Client.request``, or streamed as it arrives
under ``Client.stream``), the body's forms (bytes, text, JSON, lines), and giving the
connection back to the pool with ``ConnectionPool.release``. Decoding is ``decoding.py``'s.
It knows nothing of URLs, building requests or redirects (``request.py``, ``client.py``), nor
of how connections are opened or shared (``connector.py``, ``pool.py``).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from .. import limits
from ..errors import DecodingError, HTTPStatusError
from ..messages import Headers, TLSInfo, content_charset
from .connection import ClientConnection
from .cookies import Cookies
from .decoding import BodyDecoder, LineSplitter, text_decoder
from .pool import ConnectionPool
from .request import ClientRequest

__all__ = ["ClientResponse"]

_NOT_READ = (
    "the body has not been read: inside `client.stream(...)` call `await response.aread()` "
    "first, or iterate `response.aiter_bytes()`"
)


class ClientResponse:
    """A response as the client received it.

    ``await client.get(url)`` (and every method but ``stream``) returns it with the body read:
    ``content``, ``text`` and ``json()`` are then plain attributes and calls. Under
    ``async with client.stream(...) as response`` the body is read as you consume it, with
    ``aiter_bytes()``, ``aiter_text()``, ``aiter_lines()`` or ``aiter_raw()``, or whole with
    ``await response.aread()``. The connection goes back to the pool once the body is read.

    Attributes:
        status: the status code (also ``status_code``).
        reason: the reason phrase the server sent.
        http_version: ``"1.1"`` or ``"1.0"``.
        url: the URL that answered (after redirects, when followed).
        method: the method of the request that got this response.
        request: the request that got this response (the last one, after redirects).
        history: the redirect responses followed to get here, oldest first.
    """

    __slots__ = (
        "status",
        "reason",
        "http_version",
        "url",
        "method",
        "request",
        "history",
        "_raw",
        "_headers",
        "_conn",
        "_pool",
        "_tls",
        "_content",
        "_decoder",
        "_read_timeout",
        "_deadline",
        "_streamed",
        "_max_decoded",
        "_started",
        "_elapsed",
    )

    def __init__(
        self,
        conn: ClientConnection,
        pool: ConnectionPool,
        request: ClientRequest,
        read_timeout: float | None,
        deadline: float | None,
        max_decoded_bytes: int,
        started: float,
    ) -> None:
        head = conn.head
        assert head is not None, "a response is made once its head has arrived"
        self.status: int = head.status_code
        self.reason: str = head.reason.decode("latin-1")
        self.http_version: str = head.http_version.decode("ascii")
        self.url = request.url
        self.method = request.method
        self.request = request
        self.history: list[ClientResponse] = []
        self._raw: list[tuple[bytes, bytes]] = head.headers
        self._headers: Headers | None = None
        self._conn: ClientConnection | None = conn
        self._pool = pool
        self._tls: ClientConnection | TLSInfo | None = conn
        self._content: bytes | None = None
        self._decoder: BodyDecoder | None = None
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._streamed = False
        self._max_decoded = max_decoded_bytes
        self._started = started
        self._elapsed: float | None = None
        for name, value in self._raw:
            if name == b"content-encoding":
                codings = [c.strip().lower() for c in value.decode("latin-1").split(",")]
                codings = [c for c in codings if c and c != "identity"]
                if codings and all(c in ("gzip", "x-gzip", "deflate") for c in codings):
                    self._decoder = BodyDecoder(codings, max_decoded_bytes)

    # --- the head -----------------------------------------------------------------------------

    @property
    def status_code(self) -> int:
        """The status code (the name httpx and requests use)."""
        return self.status

    @property
    def headers(self) -> Headers:
        """The response headers (case-insensitive, multi-valued)."""
        if self._headers is None:
            self._headers = Headers.from_raw(self._raw)
        return self._headers

    @property
    def tls(self) -> TLSInfo | None:
        """What the TLS handshake agreed (version, cipher, ALPN), or ``None`` for http://."""
        if isinstance(self._tls, ClientConnection):
            self._tls = self._tls.tls
        return self._tls

    @property
    def cookies(self) -> Cookies:
        """The cookies this response set (its ``Set-Cookie`` headers, checked against its URL).

        The client's jar (``client.cookies``) has kept them already.
        """
        jar = Cookies()
        jar.extract(self.url, self.headers)
        return jar

    @property
    def is_success(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """True for a redirect status with a ``Location`` (301, 302, 303, 307, 308)."""
        return self.status in (301, 302, 303, 307, 308) and "location" in self.headers

    @property
    def is_error(self) -> bool:
        """True for a 4xx or 5xx status."""
        return self.status >= 400

    @property
    def elapsed(self) -> timedelta:
        """The time from sending the request to the end of the body (or closing the response).

        Raises:
            RuntimeError: the response is still open (streamed, body not read to the end).
        """
        if self._elapsed is None:
            raise RuntimeError("elapsed is known once the body is read or the response closed")
        return timedelta(seconds=self._elapsed)

    @property
    def is_closed(self) -> bool:
        """True once the body was read (or the response closed) and the connection given back."""
        return self._conn is None

    # --- the body, read -----------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        """The charset ``text`` decodes with: the response's ``Content-Type`` one, or UTF-8."""
        return content_charset(self.headers.get("content-type")) or "utf-8"

    @property
    def content(self) -> bytes:
        """The whole body, decoded (gzip, deflate).

        Raises:
            RuntimeError: the response is streamed and its body not read (``aread()``).
        """
        if self._content is None:
            raise RuntimeError(_NOT_READ)
        return self._content

    @property
    def text(self) -> str:
        """The body as text, in ``encoding``; bytes that do not decode become U+FFFD."""
        data = self.content
        try:
            return data.decode(self.encoding, errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (``kwargs`` go to ``json.loads``).

        Raises:
            DecodingError: the body is not JSON.
        """
        data = self.content
        try:
            return jsonlib.loads(data, **kwargs)
        except ValueError as exc:
            raise DecodingError(f"the response body from {self.url} is not JSON: {exc}") from exc

    async def aread(self) -> bytes:
        """Read the whole body, decoded (gzip, deflate); afterwards ``content`` holds it.

        Raises:
            ReadTimeout, ReadError, ServerDisconnectedError: the connection failed.
            DecodingError: the body is corrupt, or larger than ``max_decoded_bytes`` decoded.
            RuntimeError: the body was already streamed.
        """
        if self._content is not None:
            return self._content
        conn = self._conn
        if conn is None or self._streamed:
            raise RuntimeError("the body was already streamed or the response closed")
        if self._read_received():
            return self._content  # type: ignore[return-value]
        try:
            parts = [chunk async for chunk in self._chunks(True)]
        except BaseException:
            self._abort()
            raise
        self._content = b"".join(parts)
        self._release()
        return self._content

    def _read_received(self) -> bool:
        """Take the body at once when it has all arrived undecoded (the common small case)."""
        conn = self._conn
        if conn is None or not conn.is_complete or self._decoder is not None:
            return False
        chunks = conn.take_chunks()
        content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        # h11 hands out bytearrays: content is bytes, as its type says.
        self._content = content if type(content) is bytes else bytes(content)
        self._release()
        return True

    # --- the body, streamed -------------------------------------------------------------------

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body, decoded (gzip, deflate), as it arrives; the socket is read only as
        fast as this is consumed. After ``aread()`` it yields ``content``.
        """
        async for chunk in self._iterate(True):
            yield chunk

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """Yield the body as sent, content codings left in place."""
        async for chunk in self._iterate(False):
            yield chunk

    async def aiter_text(self) -> AsyncIterator[str]:
        """Yield the body as text, in ``encoding``, as it arrives."""
        decoder = text_decoder(self.encoding)
        async for chunk in self._iterate(True):
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Yield the body's lines, without their line breaks, as they arrive.

        Raises:
            DecodingError: a line is longer than ``max_decoded_bytes``.
        """
        splitter = LineSplitter(self._max_decoded)
        async for text in self.aiter_text():
            for line in splitter.feed(text):
                yield line
        for line in splitter.flush():
            yield line

    async def _iterate(self, decode: bool) -> AsyncIterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._streamed or self._conn is None:
            raise RuntimeError("the body can be streamed only once")
        self._streamed = True
        try:
            async for chunk in self._chunks(decode):
                yield chunk
        except BaseException:
            self._abort()
            raise
        self._release()

    async def _chunks(self, decode: bool) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        decoder = self._decoder if decode else None
        timeout, deadline = self._read_timeout, self._deadline
        while chunk := await conn.receive_chunk(timeout, deadline):
            if type(chunk) is not bytes:
                chunk = bytes(chunk)  # h11 hands out bytearrays
            if decoder is not None:
                chunk = decoder.decode(chunk)
                if not chunk:
                    continue
            yield chunk
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail

    # --- the connection -----------------------------------------------------------------------

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._elapsed = self._pool.loop.time() - self._started
            self._pool.release(conn)

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._elapsed = self._pool.loop.time() - self._started
            conn.abort()
            self._pool.release(conn)

    async def aclose(self) -> None:
        """Give the connection back: to the pool when the body was all received, else closed."""
        conn = self._conn
        if conn is None:
            return
        if conn.is_complete:
            conn.take_chunks()
            self._release()
        else:
            # A half-read connection cannot carry another request.
            self._abort()

    async def _discard(self) -> None:
        """Read a redirect's (small) body so its connection can be reused; close it otherwise."""
        conn = self._conn
        if conn is None:
            return
        if conn.is_complete:
            await self.aclose()
            return
        try:
            total = 0
            async for chunk in self.aiter_raw():
                total += len(chunk)
                if total > limits.READ_HIGH_WATER:
                    break
        finally:
            await self.aclose()

    def raise_for_status(self) -> ClientResponse:
        """Raise ``HTTPStatusError`` for a 4xx or 5xx status; return the response otherwise.

        Example::

            data = (await client.get(url)).raise_for_status().json()
        """
        if self.status >= 400:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError(
                f"{self.status} {self.reason} ({kind}) for {self.method} {self.url}",
                status=self.status,
                url=self.url,
            )
        return self

    def __repr__(self) -> str:
        return f"<ClientResponse [{self.status} {self.reason}]>"
