"""``ClientResponse``: a response as the client received it, its body read on demand.

This module owns reading the body (whole, or streamed as it arrives), gzip/deflate decoding
with a size cap, and giving the connection back to the pool with ``ConnectionPool.release``.
It knows nothing of URLs, building requests or redirects (``request.py``, ``client.py``), nor
of how connections are opened or shared (``connector.py``, ``pool.py``).
"""

from __future__ import annotations

import json as jsonlib
import zlib
from collections.abc import AsyncIterable
from typing import Any

from .. import limits
from ..errors import DecodingError, HTTPStatusError
from ..messages import Headers, TLSInfo, content_charset
from .connection import ClientConnection
from .pool import ConnectionPool

__all__ = ["ClientResponse"]


class _Decoder:
    """gzip and deflate, undone piece by piece, refusing output past ``max_size`` bytes."""

    __slots__ = ("_encodings", "_objects", "_fresh", "_left", "_max")

    def __init__(self, encodings: list[str], max_size: int) -> None:
        # Content-Encoding lists codings in the order applied; undo them in reverse.
        self._encodings = encodings[::-1]
        self._objects = [self._new(e) for e in self._encodings]
        self._fresh = [True] * len(encodings)
        self._left = [max_size] * len(encodings)
        self._max = max_size

    @staticmethod
    def _new(encoding: str) -> Any:
        # 47 = 32 + 15: a gzip or a zlib header, detected.
        return zlib.decompressobj(47 if encoding in ("gzip", "x-gzip") else 15)

    def decode(self, data: bytes) -> bytes:
        for i, encoding in enumerate(self._encodings):
            data = self._run(i, encoding, data)
        return data

    def _count(self, i: int, size: int) -> None:
        self._left[i] -= size
        if self._left[i] < 0:
            raise DecodingError(
                f"the decoded response body is larger than {self._max} bytes "
                "(max_decoded_bytes); stream(decode=False) reads it as sent"
            )

    def _run(self, i: int, encoding: str, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            obj = self._objects[i]
            try:
                # Never ask for more than the cap allows: a bomb stops here, not in memory.
                piece = obj.decompress(data, self._left[i] + 1)
            except zlib.error as exc:
                if encoding == "deflate" and self._fresh[i]:
                    # Some servers send raw deflate, without the zlib header RFC 9110 asks for.
                    self._fresh[i] = False
                    self._objects[i] = zlib.decompressobj(-15)
                    continue
                raise DecodingError(f"the {encoding} response body is corrupt: {exc}") from exc
            self._fresh[i] = False
            self._count(i, len(piece))
            out.append(piece)
            if obj.unconsumed_tail:
                data = obj.unconsumed_tail
            elif obj.eof and obj.unused_data and encoding in ("gzip", "x-gzip"):
                data = obj.unused_data  # another gzip member follows
                self._objects[i] = self._new(encoding)
            else:
                break
        return b"".join(out)

    def flush(self) -> bytes:
        data = b""
        for i, encoding in enumerate(self._encodings):
            if data:
                data = self._run(i, encoding, data)
            tail = self._objects[i].flush()
            if tail:
                self._count(i, len(tail))
                data += tail
        return data


class ClientResponse:
    """A response as the client received it; the body is read on demand.

    Made by the client from a connection whose head has arrived (``ConnectionPool.send``);
    the connection goes back to ``pool`` once the body is read or the response closed.

    Attributes:
        status: the status code.
        reason: the reason phrase the server sent.
        http_version: ``"1.1"`` or ``"1.0"``.
        url: the URL that answered (after redirects, when followed).
        method: the method of the request that got this response.
        history: the redirect responses followed to get here, oldest first.
    """

    __slots__ = (
        "status",
        "reason",
        "http_version",
        "url",
        "method",
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
    )

    def __init__(
        self,
        conn: ClientConnection,
        pool: ConnectionPool,
        url: str,
        method: str,
        read_timeout: float | None,
        deadline: float | None,
        max_decoded_bytes: int,
    ) -> None:
        head = conn.head
        assert head is not None, "a response is made once its head has arrived"
        self.status: int = head.status_code
        self.reason: str = head.reason.decode("latin-1")
        self.http_version: str = head.http_version.decode("ascii")
        self.url = url
        self.method = method
        self.history: list[ClientResponse] = []
        self._raw: list[tuple[bytes, bytes]] = head.headers
        self._headers: Headers | None = None
        self._conn: ClientConnection | None = conn
        self._pool = pool
        self._tls: ClientConnection | TLSInfo | None = conn
        self._content: bytes | None = None
        self._decoder: _Decoder | None = None
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._streamed = False
        for name, value in self._raw:
            if name == b"content-encoding":
                codings = [c.strip().lower() for c in value.decode("latin-1").split(",")]
                codings = [c for c in codings if c and c != "identity"]
                if codings and all(c in ("gzip", "x-gzip", "deflate") for c in codings):
                    self._decoder = _Decoder(codings, max_decoded_bytes)

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
    def is_closed(self) -> bool:
        """True once the body was read (or the response closed) and the connection given back."""
        return self._conn is None

    @property
    def content(self) -> bytes:
        """The body, after ``await read()``."""
        if self._content is None:
            raise RuntimeError("the body has not been read: call `await response.read()` first")
        return self._content

    async def read(self) -> bytes:
        """The whole body, decoded (gzip, deflate); kept for later calls.

        Raises:
            ReadTimeout, ReadError, ServerDisconnectedError: the connection failed.
            DecodingError: the body is corrupt, or larger than ``max_decoded_bytes`` decoded.
        """
        if self._content is not None:
            return self._content
        conn = self._conn
        if conn is None:
            raise RuntimeError("the body was already streamed or the response closed")
        if self._read_received():
            return self._content  # type: ignore[return-value]
        try:
            parts = []
            async for chunk in self._chunks(True):
                parts.append(chunk)
            content = b"".join(parts)
        except BaseException:
            self._abort()
            raise
        self._content = content
        self._release()
        return content

    def _read_received(self) -> bool:
        """Take the body at once when it has all arrived undecoded (the common small case)."""
        conn = self._conn
        if conn is None or not conn.is_complete or self._decoder is not None:
            return False
        chunks = conn.take_chunks()
        self._content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._release()
        return True

    async def text(self, encoding: str | None = None) -> str:
        """The body as text, decoded with ``encoding``, the response's charset, or UTF-8."""
        data = await self.read()
        charset = encoding or content_charset(self.headers.get("content-type")) or "utf-8"
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            return data.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            DecodingError: the body is not JSON.
        """
        data = await self.read()
        try:
            return jsonlib.loads(data)
        except ValueError as exc:
            raise DecodingError(f"the response body from {self.url} is not JSON: {exc}") from exc

    async def stream(self, decode: bool = True) -> AsyncIterable[bytes]:
        """Yield the body as it arrives; the socket is read only as fast as this is consumed.

        Args:
            decode: undo gzip/deflate (the default); ``False`` yields the bytes as sent.
        """
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

    async def _chunks(self, decode: bool) -> AsyncIterable[bytes]:
        conn = self._conn
        assert conn is not None
        decoder = self._decoder if decode else None
        timeout, deadline = self._read_timeout, self._deadline
        while chunk := await conn.receive_chunk(timeout, deadline):
            if decoder is not None:
                chunk = decoder.decode(chunk)
                if not chunk:
                    continue
            yield chunk
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)

    def _abort(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
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
            async for chunk in self.stream(decode=False):
                total += len(chunk)
                if total > limits.READ_HIGH_WATER:
                    break
        finally:
            await self.aclose()

    def raise_for_status(self) -> ClientResponse:
        """Raise ``HTTPStatusError`` for a 4xx or 5xx status; return the response otherwise.

        Example::

            data = await (await client.get(url)).raise_for_status().json()
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
