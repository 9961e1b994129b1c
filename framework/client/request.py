"""What the client sends: URLs, query strings, headers and bodies made into a ``ClientRequest``.

This module owns splitting a URL into an origin and a target, encoding query parameters and
bodies (forms and uploads through ``multipart.py``), merging the client's headers with a
request's own, and encoding a request without a body once per URL and method. It also holds
``Timeout``, the request's timeouts by phase, which travel with it to the pool. It knows
nothing of connections, the pool, redirects or responses.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import quote, urlencode, urlsplit

from .. import limits
from ..errors import LocalProtocolError
from ..http11 import HeaderList, Prepared, Request, check, prepare
from ..messages import Headers, HeadersLike
from .connection import Origin
from .multipart import DataLike, FilesLike, encode_form

__all__ = [
    "BODY_HEADERS",
    "CREDENTIALS",
    "NO_BODY",
    "Body",
    "ClientRequest",
    "Content",
    "QueryLike",
    "Target",
    "Timeout",
    "build_request",
    "client_headers",
    "encode_body",
    "encode_query",
    "raw_headers",
    "split_url",
]

QueryLike: TypeAlias = "Mapping[str, Any] | Sequence[tuple[str, Any]] | str"
Content: TypeAlias = "bytes | bytearray | memoryview | str | AsyncIterable[bytes | str]"

#: Headers that carry credentials, meant for one origin only (dropped on a cross-origin redirect).
CREDENTIALS = (b"authorization", b"cookie", b"proxy-authorization")
#: Headers that describe a body (dropped when a redirect turns the request into a GET).
BODY_HEADERS = (b"content-length", b"transfer-encoding", b"content-type", b"content-encoding")

_DEFAULT_PORTS = {"https": 443, "http": 80}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# RFC 9110 8.6: send Content-Length: 0 when a method that expects a body has none.
_EXPECTS_BODY = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_HEADERS = (
    (b"user-agent", b"framework"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
)
# RFC 3986 3.3 and 3.4: the characters a path and a query may carry unescaped.
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts by phase, in seconds; ``None`` waits without limit.

    Args:
        connect: TCP connection and TLS handshake.
        read: the longest silence while waiting for the response.
        write: the longest wait for the server to accept more request bytes.
        pool: the longest wait for a free connection when the pool is at its bound.
        total: an optional deadline for the whole request, from the pool wait to the last
            body byte; it cuts every phase short.

    Example::

        Client(timeout=Timeout(connect=2, read=10))   # the others keep their defaults
        Client(timeout=5.0)                             # every phase 5 s, no total deadline
    """

    connect: float | None = limits.CLIENT_CONNECT_TIMEOUT
    read: float | None = limits.CLIENT_READ_TIMEOUT
    write: float | None = limits.CLIENT_WRITE_TIMEOUT
    pool: float | None = limits.CLIENT_POOL_TIMEOUT
    total: float | None = None

    @classmethod
    def of(cls, value: Timeout | float | None) -> Timeout:
        """``value`` as a ``Timeout``: a number sets every phase, ``None`` turns them all off."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(None, None, None, None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return cls(value, value, value, value)
        raise ValueError(f"timeout must be a Timeout, a positive number or None, not {value!r}")


# --- URLs ---------------------------------------------------------------------------------------


class Target:
    """A URL split once into what the connection needs (the client caches one per URL string).

    Attributes:
        origin: where the request goes.
        target: the request target, path and query, escaped.
        url: the URL normalised (lowercase scheme, default port left out, no fragment).
        host_header: the ``Host`` header's value.
        headers: the host and client headers, for a request without headers of its own.
        bodiless: method -> the ``ClientRequest`` without a body or headers of its own.
    """

    __slots__ = ("origin", "target", "url", "headers", "host_header", "bodiless")

    def __init__(self, origin: Origin, target: bytes, url: str, host_header: bytes) -> None:
        self.origin = origin
        self.target = target
        self.url = url
        self.host_header = host_header
        self.headers: HeaderList = []
        self.bodiless: dict[str, ClientRequest] = {}


def split_url(url: str) -> Target:
    """Split an absolute ``http(s)://`` URL, its host IDNA-encoded and its path escaped.

    Raises:
        ValueError: the URL is not absolute, carries credentials, or has no host or a bad port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"URL {url!r} must be absolute and start with https:// (or http://); "
            "give Client a base_url for relative ones"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"URL {url!r} carries credentials; send them in an Authorization header instead"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {url!r} has no host")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    default = _DEFAULT_PORTS[scheme]
    port = default if port is None else port
    bracketed = f"[{host}]" if ":" in host else host
    authority = bracketed if port == default else f"{bracketed}:{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE) if parts.query else ""
    target = f"{path}?{query}" if query else path
    return Target(
        Origin(scheme, host, port),
        target.encode("ascii"),
        f"{scheme}://{authority}{target}",
        authority.encode("ascii"),
    )


def encode_query(params: QueryLike) -> str:
    """Query parameters as a query string: lists repeat the key, booleans read true/false."""
    if isinstance(params, str):
        return params.lstrip("?")
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        for one in values:
            text = ("true" if one else "false") if isinstance(one, bool) else str(one)
            pairs.append((key, "" if one is None else text))
    return urlencode(pairs)


# --- headers and bodies -------------------------------------------------------------------------


def raw_headers(headers: HeadersLike | None) -> HeaderList:
    """``headers`` as (lowercase name, value) byte pairs."""
    if headers is None:
        return []
    return (headers if isinstance(headers, Headers) else Headers(headers)).raw


def client_headers(headers: HeadersLike | None) -> HeaderList:
    """The headers a client sends with every request: its own, then the defaults it lacks.

    They are checked here, once, so that requests can reuse them unchecked.

    Raises:
        ValueError: a header name or value cannot be sent.
    """
    own = raw_headers(headers)
    names = {name for name, _ in own}
    merged = [h for h in _DEFAULT_HEADERS if h[0] not in names] + own
    try:
        prepare(Request(b"GET", b"/", [(b"host", b"x"), *merged]))
    except LocalProtocolError as exc:
        raise ValueError(f"invalid client header: {exc}") from None
    return merged


class Body(NamedTuple):
    """A request body as given: bytes, or an async iterator (sent chunked), and its type."""

    data: bytes | None
    stream: AsyncIterable[bytes | str] | None
    content_type: bytes | None


#: No body at all (most requests).
NO_BODY = Body(None, None, None)


def encode_body(
    content: Content | None,
    json: Any,
    data: DataLike | None = None,
    files: FilesLike | None = None,
) -> Body:
    """The ``content``/``json``/``data``/``files`` arguments of a request as a ``Body``.

    Raises:
        ValueError: more than one kind of body was given.
        TypeError: ``content``, ``data`` or a file is of a type that cannot be sent.
    """
    if data is not None or files:
        if content is not None or json is not None:
            raise ValueError("pass data=/files= or content=/json=, not both")
        encoded, content_type = encode_form(data, files)
        return Body(encoded, None, content_type)
    if json is not None:
        if content is not None:
            raise ValueError("pass content= or json=, not both")
        encoded = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return Body(encoded, None, b"application/json")
    if content is None:
        return NO_BODY
    if isinstance(content, bytes):
        return Body(content, None, None)
    if isinstance(content, bytearray | memoryview):
        return Body(bytes(content), None, None)
    if isinstance(content, str):
        return Body(content.encode("utf-8"), None, b"text/plain; charset=utf-8")
    if isinstance(content, AsyncIterable):
        return Body(None, content, None)
    raise TypeError(
        f"content must be bytes, str or an async iterator of bytes, not {type(content).__name__}"
    )


# --- requests -----------------------------------------------------------------------------------


class ClientRequest:
    """A request ready to be written: where it goes, its head, and its body or its bytes.

    Attributes:
        origin: where it goes.
        method: ``"GET"``, ``"POST"``, ...
        url: the URL, as the response will report it.
        head: the request line and headers, checked.
        prepared: the whole request encoded once (requests without a body or headers of
            their own), or ``None``: then ``head`` is sent with ``body`` or ``stream``.
        body: the body as bytes, or ``None``.
        stream: the body as an async iterator (sent chunked), or ``None``.
        replayable: safe to send once more on a new connection when a reused one turned out
            dead: an idempotent method (or an idempotency key) and a body we still have. The
            rule of Go's net/http; a POST is never replayed silently.
    """

    __slots__ = ("origin", "method", "url", "head", "prepared", "body", "stream", "replayable")

    def __init__(
        self,
        origin: Origin,
        method: str,
        url: str,
        head: Request,
        *,
        prepared: Prepared | None = None,
        body: bytes | None = None,
        stream: AsyncIterable[bytes | str] | None = None,
        replayable: bool = False,
    ) -> None:
        self.origin = origin
        self.method = method
        self.url = url
        self.head = head
        self.prepared = prepared
        self.body = body
        self.stream = stream
        self.replayable = replayable

    @property
    def headers(self) -> Headers:
        """The headers as sent (a copy: changing it changes nothing)."""
        return Headers.from_raw(list(self.head.headers))

    @property
    def content(self) -> bytes | None:
        """The body as sent, or ``None`` when there was none or it was streamed."""
        return self.body

    def __repr__(self) -> str:
        return f"<ClientRequest [{self.method} {self.url}]>"


def build_request(
    method: str,
    target: Target,
    defaults: HeaderList,
    headers: HeaderList | None,
    body: Body,
    strip_credentials: bool = False,
) -> ClientRequest:
    """The request to send: ``method`` to ``target`` with ``body``.

    Args:
        method: the method, uppercase.
        target: the URL, split (``target.headers`` set).
        defaults: the client's headers (``client_headers``).
        headers: this request's own headers, which replace the client's of the same name.
        body: the body (``encode_body``).
        strip_credentials: leave out the client's credential headers (after a redirect to
            another origin).

    Raises:
        ValueError: a header of the request's own cannot be sent.
    """
    if (
        body is NO_BODY
        and headers is None
        and not strip_credentials
        and method not in _EXPECTS_BODY
    ):
        request = target.bodiless.get(method)
        if request is None:
            request = target.bodiless[method] = _bodiless(method, target)
        return request
    data, stream = body.data, body.stream
    length = None
    if data is not None:
        length = len(data)
    elif stream is None and method in _EXPECTS_BODY:
        length = 0
    head = _head(
        method,
        target,
        defaults,
        headers,
        length,
        stream is not None,
        body.content_type,
        strip_credentials,
    )
    return ClientRequest(
        target.origin,
        method,
        target.url,
        head,
        body=data,
        stream=stream,
        replayable=_is_replayable(method, headers, stream),
    )


def _bodiless(method: str, target: Target) -> ClientRequest:
    """The request without a body or headers of its own (most GETs), encoded once per URL.

    Made anew, h11 checks every header with a regex; reused, nothing is checked again
    (benchmarks/client_compare.py).
    """
    head = Request(method.encode("ascii"), target.target, target.headers)
    return ClientRequest(
        target.origin,
        method,
        target.url,
        head,
        prepared=prepare(head),
        replayable=method in _IDEMPOTENT,
    )


def _head(
    method: str,
    target: Target,
    defaults: HeaderList,
    headers: HeaderList | None,
    length: int | None,
    chunked: bool,
    content_type: bytes | None,
    strip_credentials: bool,
) -> Request:
    if headers is None and content_type is None and not strip_credentials:
        # The usual case: the host and client headers.
        items = target.headers
        if length is not None:
            items = [*items, (b"content-length", b"%d" % length)]
        elif chunked:
            items = [*items, (b"transfer-encoding", b"chunked")]
        return Request(method.encode("ascii"), target.target, items)
    own = headers or []
    names = {name for name, _ in own}
    merged = [(b"host", target.host_header)] if b"host" not in names else []
    merged += [
        h for h in defaults if h[0] not in names and not (strip_credentials and h[0] in CREDENTIALS)
    ]
    if length is not None or chunked:
        own = [h for h in own if h[0] not in (b"content-length", b"transfer-encoding")]
    merged += own
    if content_type is not None and b"content-type" not in names:
        merged.append((b"content-type", content_type))
    if length is not None:
        merged.append((b"content-length", b"%d" % length))
    elif chunked:
        merged.append((b"transfer-encoding", b"chunked"))
    head = Request(method.encode("ascii"), target.target, merged)
    try:
        check(head)
    except LocalProtocolError as exc:
        raise ValueError(f"invalid request header: {exc}") from None
    return head


def _is_replayable(
    method: str, headers: HeaderList | None, stream: AsyncIterable[bytes | str] | None
) -> bool:
    if stream is not None:
        return False
    if method in _IDEMPOTENT:
        return True
    return any(name in (b"idempotency-key", b"x-idempotency-key") for name, _ in headers or ())
