"""``CompressionMiddleware``: gzip (and brotli, when the ``brotli`` module is installed).

A response is compressed when the client's ``Accept-Encoding`` takes a coding we have, its
type is in the list and not an already-compressed one, and it is not small; in-memory bodies
at once, streamed ones (``StreamingResponse``, ``FileResponse``) piece by piece, each piece
flushed so that a stream reaches the client as it is produced. Never compressed: ``206``
(its ``Content-Range`` counts bytes of the uncompressed file), 1xx/204/304, bodies with a
``Content-Encoding`` already, and ``Cache-Control: no-transform``.
"""

from __future__ import annotations

import asyncio
import importlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from .. import files
from ..messages import FileResponse, Request, Response
from .vary import add_vary

__all__ = ["ALREADY_COMPRESSED", "COMPRESSIBLE_TYPES", "CompressionMiddleware"]

try:
    _brotli: Any = importlib.import_module("brotli")
except ImportError:  # brotli is optional: gzip alone then
    _brotli = None

#: Types compressed by default (``type/*`` and ``*+suffix`` patterns allowed), after nginx's
#: gzip_types and Caddy's encode defaults: text, JSON, JavaScript, XML, SVG, WebAssembly.
COMPRESSIBLE_TYPES = (
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "application/x-ndjson",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
)
#: Types never compressed, whatever the list says: their bytes are compressed already and
#: would only grow (and cost CPU).
ALREADY_COMPRESSED = (
    "image/*",
    "video/*",
    "audio/*",
    "font/woff",
    "font/woff2",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/zstd",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/x-rar-compressed",
)
# In-memory bodies above this size are compressed in a thread: gzip at level 6 takes 5 to
# 10 ms a MiB of JSON, time every other connection would wait for.
_IN_THREAD_BYTES = 256 * 1024
_STILL_COMPRESSIBLE_IMAGES = ("image/svg+xml", "image/x-icon", "image/bmp")


def _matches(media_type: str, pattern: str) -> bool:
    kind, _, sub = media_type.partition("/")
    pkind, _, psub = pattern.partition("/")
    if pkind not in ("*", kind):
        return False
    if psub == "*":
        return True
    if psub.startswith("*+"):
        return sub.endswith(psub[1:])
    return psub == sub


class CompressionMiddleware:
    """Compress responses the client can decode: brotli when installed, else gzip.

    Args:
        minimum_size: bodies smaller than this many bytes are sent as they are (500, as
            Starlette's GZipMiddleware: below it the headers cost more than is saved). A
            streamed body without ``Content-Length`` is always compressed.
        media_types: the ``Content-Type`` patterns compressed (``COMPRESSIBLE_TYPES``).
        gzip_level: zlib level 1-9 (6, zlib's and nginx's default trade-off).
        brotli_quality: brotli quality 0-11 (4: near gzip-6 speed, smaller output; Caddy
            uses 3-5 for on-the-fly compression).
        brotli: offer brotli (``None``: when the ``brotli`` module is installed).

    The response gets ``Vary: Accept-Encoding`` whenever it could have been compressed, and
    its ``ETag`` becomes weak (``W/``), as nginx does, since the bytes are no longer those
    the strong tag named.

    Example::

        app.middleware(CompressionMiddleware(minimum_size=1024))
    """

    def __init__(
        self,
        minimum_size: int = 500,
        media_types: Sequence[str] = COMPRESSIBLE_TYPES,
        *,
        gzip_level: int = 6,
        brotli_quality: int = 4,
        brotli: bool | None = None,
    ) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be 0 or more bytes, not {minimum_size}")
        if not 1 <= gzip_level <= 9:
            raise ValueError(f"gzip_level must be 1 to 9, not {gzip_level}")
        if not 0 <= brotli_quality <= 11:
            raise ValueError(f"brotli_quality must be 0 to 11, not {brotli_quality}")
        if brotli and _brotli is None:
            raise ValueError("brotli=True needs the brotli module: pip install brotli")
        self.minimum_size = minimum_size
        self.media_types = tuple(t.lower() for t in media_types)
        self.gzip_level = gzip_level
        self.brotli_quality = brotli_quality
        use_brotli = _brotli is not None if brotli is None else brotli
        self.offered = ("br", "gzip") if use_brotli else ("gzip",)

    def compressible_type(self, content_type: str | None) -> bool:
        """True when bodies of ``content_type`` are compressed: listed, not compressed already."""
        media_type = (content_type or "").partition(";")[0].strip().lower()
        if not media_type or not any(_matches(media_type, p) for p in self.media_types):
            return False
        return media_type in _STILL_COMPRESSIBLE_IMAGES or not any(
            _matches(media_type, p) for p in ALREADY_COMPRESSED
        )

    def compressible(self, response: Response) -> bool:
        """True when ``response`` would be compressed for a client that takes gzip."""
        status = response.status
        if status < 200 or status in (204, 206, 304):
            return False
        headers = response.headers
        if "content-range" in headers or headers.get("content-encoding", "identity") != "identity":
            return False
        if "no-transform" in (headers.get("cache-control") or "").lower():
            return False
        if not self.compressible_type(headers.get("content-type")):
            return False
        if response.body_iterator is None:
            return len(response.body) >= self.minimum_size
        length = headers.get("content-length")
        return not (length is not None and length.isdigit() and int(length) < self.minimum_size)

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Compress the response to ``request`` when it is worth it and the client takes it."""
        response = await call_next(request)
        if isinstance(response, FileResponse):
            # Its Range and conditionals first: a 206 or 304 is not compressed.
            response = response.for_request(request)
        if response.status == 304 and isinstance(response, FileResponse):
            # A 304 carries the Vary its 200 would have (RFC 9110 15.4.5), or a cache keeps
            # one coding's answer for every client.
            if response.stat.st_size >= self.minimum_size and self.compressible_type(
                response.media_type
            ):
                add_vary(response.headers, "Accept-Encoding")
            return response
        if not self.compressible(response):
            return response
        add_vary(response.headers, "Accept-Encoding")
        coding = files.preferred_encoding(request.headers.get("accept-encoding"), self.offered)
        if coding is None:
            return response
        headers = response.headers
        headers["content-encoding"] = coding
        etag = headers.get("etag")
        if etag is not None and not etag.startswith("W/"):
            headers["etag"] = "W/" + etag
        if response.body_iterator is None:
            if len(response.body) > _IN_THREAD_BYTES:
                response.body = await asyncio.to_thread(self._compress_whole, coding, response.body)
            else:
                response.body = self._compress_whole(coding, response.body)
            if "content-length" in headers:
                headers["content-length"] = str(len(response.body))
            return response
        if "content-length" in headers:
            del headers["content-length"]  # sent chunked: the compressed length is not known
        response.body_iterator = self._compress_stream(coding, response.body_iterator)
        return response

    def _compress_whole(self, coding: str, body: bytes) -> bytes:
        if coding == "br":
            return bytes(_brotli.compress(body, quality=self.brotli_quality))
        compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
        return compressor.compress(body) + compressor.flush()

    async def _compress_stream(
        self, coding: str, body: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        if coding == "br":
            brotli_compressor = _brotli.Compressor(quality=self.brotli_quality)
            compress: Callable[[bytes], bytes] = brotli_compressor.process
            flush: Callable[[], bytes] = brotli_compressor.flush
            finish: Callable[[], bytes] = brotli_compressor.finish
        else:
            gzip_compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
            compress = gzip_compressor.compress
            flush = lambda: gzip_compressor.flush(zlib.Z_SYNC_FLUSH)  # noqa: E731
            finish = gzip_compressor.flush
        try:
            async for chunk in body:
                # Flushed per piece: a stream's events reach the client when they are made.
                data = compress(chunk) + flush()
                if data:
                    yield data
            yield finish()
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    def __repr__(self) -> str:
        return f"<CompressionMiddleware {'/'.join(self.offered)} min={self.minimum_size}>"
