"""The HTTP vocabulary both roles share: ``Headers``, ``Request``, ``Response`` and its kinds.

No I/O happens here: a request's body comes from a ``BodySource`` the server supplies (or from
bytes given directly, in tests), and a response's body is bytes or an async iterator that the
server drains. Nothing here knows about sockets, TLS or h11.
"""

from __future__ import annotations

import json as jsonlib
import mimetypes
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol, TypeAlias
from urllib.parse import parse_qsl, quote

from . import limits
from .errors import HTTPError

__all__ = [
    "BodySource",
    "FileResponse",
    "Handler",
    "Headers",
    "Hook",
    "JSONResponse",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "Response",
    "StreamingResponse",
    "TLSInfo",
    "content_charset",
]

HeadersLike: TypeAlias = (
    "Headers | Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]"
)


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class Headers:
    """Case-insensitive, multi-valued, ordered HTTP headers.

    ``headers["content-type"]`` gives the first value; ``get_all(name)`` every value.
    Names compare without case; values are ``str`` (decoded as Latin-1, as HTTP/1.1 defines).

    Example::

        Headers({"Content-Type": "text/plain"})
        Headers([("set-cookie", "a=1"), ("set-cookie", "b=2")])
    """

    __slots__ = ("_list",)

    def __init__(self, headers: HeadersLike | None = None) -> None:
        # Stored as h11 gives them: (lowercase name, value), both bytes, so received headers
        # are wrapped without a copy and decoded only when looked at.
        self._list: list[tuple[bytes, bytes]]
        if headers is None:
            self._list = []
        elif isinstance(headers, Headers):
            self._list = list(headers._list)
        else:
            items = headers.items() if isinstance(headers, Mapping) else headers
            self._list = [(_to_bytes(k).lower(), _to_bytes(v)) for k, v in items]

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap a list of (lowercase name, value) byte pairs without copying it."""
        self = cls.__new__(cls)
        self._list = raw
        return self

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The headers as (lowercase name, value) byte pairs, in order."""
        return self._list

    def __getitem__(self, name: str) -> str:
        key = name.lower().encode("latin-1")
        for k, v in self._list:
            if k == key:
                return v.decode("latin-1")
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default`` when it is absent."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (empty when absent)."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._list if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self._list)

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = name.lower().encode("latin-1")
        self._list = [(k, v) for k, v in self._list if k != key]
        self._list.append((key, _to_bytes(value)))

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless present; return the value in force."""
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def add(self, name: str, value: str) -> None:
        """Append a value, keeping those already there (``Set-Cookie`` and the like)."""
        self._list.append((name.lower().encode("latin-1"), _to_bytes(value)))

    def __delitem__(self, name: str) -> None:
        key = name.lower().encode("latin-1")
        kept = [(k, v) for k, v in self._list if k != key]
        if len(kept) == len(self._list):
            raise KeyError(name)
        self._list = kept

    def keys(self) -> list[str]:
        """The distinct names, lowercase, in first-seen order."""
        return list(dict.fromkeys(k.decode("latin-1") for k, _ in self._list))

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, names lowercase, repeats kept."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._list]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class QueryParams:
    """The query string, decoded: ``query["page"]`` is the first value, ``get_all`` every one."""

    __slots__ = ("_items",)

    def __init__(self, query_string: str | bytes = "") -> None:
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        self._items = parse_qsl(query_string, keep_blank_values=True)

    def __getitem__(self, name: str) -> str:
        for k, v in self._items:
            if k == name:
                return v
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [v for k, v in self._items if k == name]

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, repeats kept."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


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


class Request:
    """An HTTP request as a handler sees it.

    Attributes:
        method: ``"GET"``, ``"POST"``, ... (uppercase).
        path: the decoded path, without the query string.
        raw_path: the target's path as received, still percent-encoded.
        query_string: the raw query string (bytes).
        headers: the request headers.
        client: the peer's (address, port), or ``None``.
        tls: what TLS agreed for the connection, or ``None`` on plain HTTP.
        path_params: the typed values matched by the route template.
        state: a dict for middleware and handlers to share data on.
    """

    __slots__ = (
        "method",
        "path",
        "raw_path",
        "query_string",
        "headers",
        "client",
        "tls",
        "http_version",
        "path_params",
        "state",
        "_query",
        "_source",
        "_body",
        "_streamed",
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
        self.tls = tls
        self.http_version = http_version
        self.path_params: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self._query: QueryParams | None = None
        if isinstance(body, bytes):
            self._source: BodySource | None = None
            self._body: bytes | None = body
        else:
            self._source = body
            self._body = None
        self._streamed = False

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

    async def body(self, max_size: int = limits.MAX_BODY_BYTES) -> bytes:
        """The whole body; ``HTTPError(413)`` past ``max_size`` bytes."""
        if self._body is None:
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
        return raw_path.decode("latin-1")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(raw_path).decode("utf-8", "replace")


def content_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``Content-Type`` value, or ``None``."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset":
            return value.strip('"') or None
    return None


class Response:
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
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status}>"


class JSONResponse(Response):
    """A response whose body is ``data`` serialized as compact UTF-8 JSON."""

    media_type = "application/json"

    def __init__(
        self, data: Any, status: int = 200, headers: HeadersLike | None = None
    ) -> None:
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
    """A file sent in pieces, with its length, type and last-modified time.

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
        stat = self.path.stat()
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path.name)[0]
            media_type = media_type or "application/octet-stream"
            if media_type.startswith("text/"):
                media_type += "; charset=utf-8"
        super().__init__(b"", status, headers, media_type)
        self.headers["content-length"] = str(stat.st_size)
        from email.utils import formatdate

        self.headers.setdefault("last-modified", formatdate(stat.st_mtime, usegmt=True))
        if filename is not None:
            self.headers.setdefault(
                "content-disposition", f"attachment; filename*=utf-8''{quote(filename)}"
            )
        self.body_iterator = self._read()

    async def _read(self) -> AsyncIterator[bytes]:
        import asyncio

        # Reads happen in a thread so a slow disk never stalls the event loop.
        with open(self.path, "rb") as file:  # noqa: ASYNC230 (reads below go to a thread)
            while chunk := await asyncio.to_thread(file.read, limits.FILE_CHUNK_BYTES):
                yield chunk


#: What a server serves: ``async (Request) -> Response``. An ``App`` is one.
Handler: TypeAlias = Callable[[Request], Awaitable[Response]]
#: A startup or shutdown hook: ``async () -> None``.
Hook: TypeAlias = Callable[[], Awaitable[None]]
