"""The HTTP vocabulary both roles share: ``Request``, ``Response`` and its kinds, ``Handler``.

No I/O happens here: a request's body comes from a ``BodySource`` the server supplies (or from
bytes given directly, in tests), and a response's body is bytes or an async iterator that the
server drains. Nothing here knows about sockets, TLS or h11.
"""

from __future__ import annotations

import json as jsonlib
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
)
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import quote

from . import files, limits
from .conveniences import RequestConveniences, ResponseConveniences, State
from .errors import HTTPError
from .headers import Headers, HeadersLike, QueryParams, content_charset

__all__ = [
    "BodySource",
    "FileResponse",
    "Handler",
    "Headers",
    "HeadersLike",
    "Hook",
    "JSONResponse",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "State",
    "StreamingResponse",
    "TLSInfo",
    "content_charset",
    "reason_phrase",
]
# Headers, QueryParams and content_charset live in headers.py and are named here too, where
# the rest of the vocabulary is.


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (``"Not Found"``), or ``""`` for an unknown one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


@dataclass(frozen=True)
class TLSInfo:
    """What the TLS layer agreed for a connection.

    Attributes:
        version: ``"TLSv1.3"`` or ``"TLSv1.2"``.
        cipher: the cipher suite's OpenSSL name.
        server_name: the host name the client asked for by SNI, if any.
        alpn_protocol: the protocol chosen by ALPN (``"http/1.1"``), if any.
        peer_certificate: the client's verified certificate (DER), when it presented one.
    """

    version: str | None
    cipher: str | None
    server_name: str | None = None
    alpn_protocol: str | None = None
    peer_certificate_der: bytes | None = None
    _peer: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def peer_certificate(self) -> Any:
        """The client's certificate as a ``cryptography`` ``x509.Certificate``, or ``None``."""
        if self.peer_certificate_der is None:
            return None
        if "cert" not in self._peer:
            from cryptography import x509

            self._peer["cert"] = x509.load_der_x509_certificate(self.peer_certificate_der)
        return self._peer["cert"]

    @property
    def peer_common_name(self) -> str | None:
        """The client certificate's subject common name, or ``None``."""
        cert = self.peer_certificate
        if cert is None:
            return None
        from cryptography.x509.oid import NameOID

        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None


class BodySource(Protocol):
    """Where a request body comes from: the server's connection, or fixed bytes."""

    async def read_chunk(self) -> bytes:
        """The next piece of the body; ``b""`` once it has all been read."""
        ...


class _BytesSource:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    async def read_chunk(self) -> bytes:
        data, self._data = self._data, None
        return data or b""


_EMPTY_BODY = b""


class Request(RequestConveniences):
    """An HTTP request as a handler sees it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ... (uppercase).
        path: the decoded path, without the query string, its dot-segments resolved
            (``/a/./b/../c`` is ``/a/c``; RFC 3986 5.2.4): what routing
            matches. ``*`` for ``OPTIONS *``.
        raw_path: the target's path as received, still percent-encoded.
        query_string: the raw query string (bytes).
        headers: the request headers.
        client: the client's (address, port), or ``None``: the peer, or the client a trusted
            proxy names (``forwarded_allow_ips``; port 0 when the proxy gives none).
        scheme: ``"https"`` or ``"http"``: the connection's, or what a trusted proxy says.
        server: the local (address, port) the request arrived on, or ``None``.
        tls: what TLS agreed for the connection, or ``None`` on plain HTTP.
        path_params: the typed values matched by the route template.
        state: per-request values for middleware and handlers to share, by attribute or
            key (``request.state.user``); a ``State``.
        max_body_size: the most bytes ``await request.body()`` buffers (the server's
            ``max_body_bytes``, or the route's ``max_body_size``); 413 above it.

    When the client disconnects while its request is handled, the handler is not cancelled
    (as under uvicorn and Starlette): reading the body raises ``ClientDisconnect``, and
    ``await request.is_disconnected()`` says so, for long handlers to stop early.
    """

    __slots__ = (
        "method",
        "path",
        "raw_path",
        "query_string",
        "headers",
        "client",
        "scheme",
        "server",
        "tls",
        "http_version",
        "path_params",
        "state",
        "_query",
        "_source",
        "_body",
        "_streamed",
        "max_body_size",
        "_gone",
        "upgrade",
    )

    def __init__(
        self,
        method: str,
        target: str | bytes,
        headers: Headers | HeadersLike | None = None,
        *,
        body: bytes | BodySource = _EMPTY_BODY,
        client: tuple[str, int] | None = None,
        tls: TLSInfo | None = None,
        http_version: str = "1.1",
        max_body_size: int = limits.MAX_BODY_BYTES,
        disconnected: Callable[[], bool] | None = None,
        server: tuple[str, int] | None = None,
        scheme: str | None = None,
        upgrade: Callable[[list[tuple[bytes, bytes]], Any], None] | None = None,
    ) -> None:
        if isinstance(target, str):
            target = target.encode("latin-1")
        raw_path, _, query = target.partition(b"?")
        self.method = method
        self.raw_path = raw_path
        self.path = _decode_path(raw_path)
        self.query_string = query
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.client = client
        self.scheme = scheme or ("https" if tls is not None else "http")
        self.server = server
        #: Set by the server: answer ``101 Switching Protocols`` with the given headers and
        #: hand the connection to the given ``asyncio.Protocol`` (WebSocket uses it).
        self.upgrade = upgrade
        self.tls = tls
        self.http_version = http_version
        self.path_params: dict[str, Any] = {}
        self.state = State()
        self._query: QueryParams | None = None
        if isinstance(body, bytes):
            self._source: BodySource | None = None
            self._body: bytes | None = body
        else:
            self._source = body
            self._body = None
        self._streamed = False
        self.max_body_size = max_body_size
        self._gone = disconnected

    async def is_disconnected(self) -> bool:
        """True once the client's connection is gone: nobody will read the response."""
        return self._gone is not None and self._gone()

    @property
    def body_source(self) -> BodySource | None:
        """Where the body is read from (the server's ``BodyQueue``); ``None`` for bytes given."""
        return self._source

    @property
    def query(self) -> QueryParams:
        """The decoded query parameters (multi-valued)."""
        if self._query is None:
            self._query = QueryParams(self.query_string)
        return self._query

    @property
    def url(self) -> str:
        """The request target as received (path and query)."""
        target = self.raw_path.decode("latin-1")
        return f"{target}?{self.query_string.decode('latin-1')}" if self.query_string else target

    @property
    def absolute_url(self) -> str:
        """The whole URL: ``scheme``, the ``Host`` header (else the server's address), ``url``."""
        host = self.headers.get("host")
        if not host and self.server is not None:
            address, port = self.server
            host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        return f"{self.scheme}://{host or 'localhost'}{self.url}"

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives from the socket (at most once per request)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._streamed:
            raise RuntimeError("the request body was already streamed; it can be read only once")
        self._streamed = True
        assert self._source is not None
        while chunk := await self._source.read_chunk():
            yield chunk

    async def body(self, max_size: int | None = None) -> bytes:
        """The whole body; ``HTTPError(413)`` past ``max_size`` bytes (``max_body_size``).

        A ``Content-Length`` above the limit is refused before anything is read (and before
        ``100 Continue`` is sent), a chunked body once it has grown past it.

        Raises:
            HTTPError: 413, the body is larger than the limit.
            ClientDisconnect: the body will not arrive whole.
        """
        if self._body is None:
            if max_size is None:
                max_size = self.max_body_size
            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_size:
                raise HTTPError(413, f"request body larger than {max_size} bytes")
            parts = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > max_size:
                    raise HTTPError(413, f"request body larger than {max_size} bytes")
                parts.append(chunk)
            self._body = b"".join(parts)
        return self._body

    async def text(self) -> str:
        """The body decoded with the charset of its content type (UTF-8 by default)."""
        charset = content_charset(self.headers.get("content-type")) or "utf-8"
        try:
            return (await self.body()).decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise HTTPError(400, f"request body is not valid {charset}") from exc

    async def json(self) -> Any:
        """The body parsed as JSON; ``HTTPError(400)`` when it is not."""
        data = await self.body()
        try:
            return jsonlib.loads(data)
        except ValueError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url!r}>"


def _decode_path(raw_path: bytes) -> str:
    if b"%" not in raw_path:
        path = raw_path.decode("latin-1")
    else:
        from urllib.parse import unquote_to_bytes

        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    return _remove_dot_segments(path) if "/." in path else path


def _remove_dot_segments(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments resolved (RFC 3986 5.2.4), kept under ``/``.

    ``/a/./b/../c`` becomes ``/a/c``. A ``..`` at the root stays at the root, as RFC 3986
    says; the server never gets that far, it answers such a request 400 (``/../etc``, like
    nginx), so only a ``Request`` made in code can reach this with one.
    """
    if not path.startswith("/"):
        return path
    out: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    # A final "." or ".." leaves the path ending in "/" ("/a/b/.." is "/a/").
    if segments and segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


class Response(ResponseConveniences):
    """An HTTP response with a body held in memory.

    Args:
        body: ``bytes``, or ``str`` (encoded as UTF-8).
        status: the status code.
        headers: extra headers.
        media_type: the ``Content-Type``; ``text/plain; charset=utf-8`` for a ``str`` body,
            none for bytes unless given.

    Example::

        Response("created", status=201, headers={"Location": "/users/7"})
    """

    media_type: str | None = None
    #: For streaming kinds: the body as an async iterator of bytes; ``None`` for in-memory bodies.
    body_iterator: AsyncIterator[bytes] | None = None
    #: What the handler goes on doing once this response is returned (an ASGI app streaming
    #: its body, or at work after it): the server awaits it in the task the handler ran in,
    #: while a task of its own sends the response (sent or not: the client may have left).
    #: Unlike ``background``, the connection's next request does not wait for it.
    on_end: Callable[[], Awaitable[None]] | None = None

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
    ) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
            media_type = media_type or "text/plain; charset=utf-8"
        elif not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(
                f"Response body must be bytes or str, not {type(body).__name__}; "
                "use JSONResponse for data or StreamingResponse for an iterator"
            )
        self.status = status
        self.body = bytes(body)
        self.headers = Headers(headers)
        media_type = media_type or self.media_type
        if media_type is not None and b"content-type" not in (k for k, _ in self.headers.raw):
            self.headers.raw.append((b"content-type", media_type.encode("latin-1")))

    @property
    def reason(self) -> str:
        """The standard phrase for the status (``"Not Found"``), or empty."""
        return reason_phrase(self.status)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"


class JSONResponse(Response):
    """A response whose body is ``data`` serialized as compact UTF-8 JSON."""

    media_type = "application/json"

    def __init__(self, data: Any, status: int = 200, headers: HeadersLike | None = None) -> None:
        body = jsonlib.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        super().__init__(body, status, headers)


class RedirectResponse(Response):
    """A redirect to ``url`` (307 by default, which keeps the method and body)."""

    def __init__(self, url: str, status: int = 307, headers: HeadersLike | None = None) -> None:
        super().__init__(b"", status, headers)
        self.headers["location"] = quote(url, safe=":/%#?=@[]!$&'()*+,;")


class StreamingResponse(Response):
    """A response whose body comes from an async iterator, sent as it is produced.

    Without a ``Content-Length`` header the body is sent chunked. The server waits for the
    client to accept each piece before asking for the next, so a slow client slows the
    iterator instead of filling memory.

    Example::

        async def ticks():
            for i in range(10):
                yield f"tick {i}\\n"
                await asyncio.sleep(1)

        return StreamingResponse(ticks(), media_type="text/plain")
    """

    def __init__(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(b"", status, headers, media_type)
        self.body_iterator = _encode_chunks(content)


async def _encode_chunks(content: AsyncIterable[bytes | str]) -> AsyncIterator[bytes]:
    async for chunk in content:
        yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk


class FileResponse(Response):
    """A file sent in pieces, with its length, type, ``ETag`` and ``Last-Modified``.

    Returned from a route of an ``App``, it answers the request's conditional and range
    headers as a static file server does (``for_request``): 304 when ``If-None-Match`` or
    ``If-Modified-Since`` says the client's copy is current, 412 when ``If-Match`` or
    ``If-Unmodified-Since`` fails, 206 for a satisfiable ``Range`` (one range, or several as
    ``multipart/byteranges``; ``If-Range`` honoured), 416 when none is.

    Args:
        path: the file to send; ``FileNotFoundError`` is raised here if it is missing.
        filename: when given, sent as an attachment under that name.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        filename: str | None = None,
    ) -> None:
        self.path = Path(path)
        #: The file's ``os.stat`` when the response was made; what its validators describe.
        self.stat = stat = self.path.stat()
        if media_type is None:
            media_type = files.media_type(filename or self.path.name)
        super().__init__(b"", status, headers, media_type)
        #: The type of the file's bytes, kept when a 304 drops its ``Content-Type``.
        self.media_type = self.headers.get("content-type") or media_type
        self.headers["content-length"] = str(stat.st_size)
        self.headers.setdefault("last-modified", files.http_date(stat.st_mtime))
        self.headers.setdefault("etag", files.etag_of(stat))
        self.headers.setdefault("accept-ranges", "bytes")
        if filename is not None:
            self.headers.setdefault(
                "content-disposition", f"attachment; filename*=utf-8''{quote(filename)}"
            )
        self._answered = False
        # Bounded by the size measured above: a file that grows is not read past it.
        self.body_iterator = files.read_range(self.path, 0, stat.st_size - 1)

    def for_request(self, request: Request) -> Response:
        """This response as the answer to ``request``: preconditions and ``Range`` applied.

        An ``App`` calls it for a ``FileResponse`` a route or middleware returns; a bare
        ``Handler`` serving one calls it itself. Returns this response (perhaps now a 206 or
        304) or a 412/416 in its place; a second call returns it unchanged.
        """
        if self._answered or self.status != 200:
            return self
        self._answered = True
        get = request.headers.get
        etag = self.headers.get("etag") or files.etag_of(self.stat)
        mtime = self.stat.st_mtime
        conditions = (
            get("if-match"),
            get("if-unmodified-since"),
            get("if-none-match"),
            get("if-modified-since"),
        )
        status = files.precondition(request.method, conditions, etag, mtime)
        if status == 304:
            self._drop_body(304)
            return self
        if status is not None:
            self._drop_body(status)
            return Response("Precondition Failed", status)
        value = get("range")
        if value is None or request.method != "GET":
            return self
        if_range = get("if-range")
        if if_range is not None and not files.if_range_holds(if_range, etag, mtime):
            return self
        size = self.stat.st_size
        try:
            ranges = files.parse_range(value, size)
        except files.Unsatisfiable:
            self._drop_body(416)
            return Response("Range Not Satisfiable", 416, {"content-range": f"bytes */{size}"})
        if ranges is None:
            return self
        self._drop_body(206)
        if len(ranges) == 1:
            start, end = ranges[0]
            self.headers["content-range"] = f"bytes {start}-{end}/{size}"
            self.headers["content-length"] = str(end - start + 1)
            self.body_iterator = files.read_range(self.path, start, end)
            return self
        media_type = self.headers.get("content-type") or "application/octet-stream"
        boundary, length, body = files.multipart_body(self.path, ranges, size, media_type)
        self.headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        self.headers["content-length"] = str(length)
        self.body_iterator = body
        return self

    def _drop_body(self, status: int) -> None:
        # The reader was never started: closing it opens nothing.
        self.status = status
        self.body_iterator = None
        if status == 304:
            # A 304 carries the validators and caching headers, not the body's framing.
            for name in ("content-length", "content-type"):
                if name in self.headers:
                    del self.headers[name]


#: What a server serves: ``async (Request) -> Response``. An ``App`` is one.
Handler: TypeAlias = Callable[[Request], Awaitable[Response]]
#: A startup or shutdown hook: ``async () -> None``.
Hook: TypeAlias = Callable[[], Awaitable[None]]
