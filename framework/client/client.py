"""``Client``: the asyncio HTTPS client made of the server's parts.

This module owns what the caller sends: URLs and query parameters, request headers and bodies,
timeouts by phase, redirects, and replaying a request once when a reused connection turns out
dead. The response and its decoding live in ``response.py``; connections in ``connection.py``;
the pool and TLS handshakes in ``pool.py``; TLS policy in ``tls.py``; HTTP/1.1 framing in
``http11.py`` (h11).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import ssl
import threading
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode, urljoin, urlsplit

from .. import limits
from ..errors import (
    ClientError,
    LocalProtocolError,
    ReadError,
    TooManyRedirects,
    WriteError,
)
from ..http11 import Prepared, Request, check, prepare
from ..messages import Headers, HeadersLike
from ..tls import client_context
from .connection import ClientConnection, Origin
from .connector import Connector
from .pool import ConnectionPool
from .response import ClientResponse

__all__ = ["Client", "ClientResponse", "Timeout", "system_context"]

PathLike: TypeAlias = "str | os.PathLike[str]"
QueryLike: TypeAlias = "Mapping[str, Any] | Sequence[tuple[str, Any]] | str"
Content: TypeAlias = "bytes | bytearray | memoryview | str | AsyncIterable[bytes | str]"

_DEFAULT_PORTS = {"https": 443, "http": 80}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CREDENTIALS = (b"authorization", b"cookie", b"proxy-authorization")
_BODY_HEADERS = (b"content-length", b"transfer-encoding", b"content-type", b"content-encoding")
# RFC 9110 8.6: send Content-Length: 0 when a method that expects a body has none.
_EXPECTS_BODY = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_HEADERS = (
    (b"user-agent", b"framework"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
)
_USE_CLIENT_DEFAULT: Any = object()
# Bodies larger than this are written in slices of it, waiting for the transport in between.
_SLICE = limits.WRITE_HIGH_WATER


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


# --- TLS contexts -------------------------------------------------------------------------------

_system_lock = threading.Lock()
_system_context: ssl.SSLContext | None = None


def system_context() -> ssl.SSLContext:
    """The client context trusting the system's CAs, built once per process (thread-safe).

    Loading the trust store takes milliseconds, so ``Client`` calls this in a worker thread
    the first time, never on the event loop.
    """
    global _system_context
    with _system_lock:
        if _system_context is None:
            _system_context = client_context()
        return _system_context


# --- requests -------------------------------------------------------------------------------------


class _Target:
    """A URL split once into what the connection needs (cached per URL string)."""

    __slots__ = ("origin", "target", "url", "headers", "host_header", "bodiless")

    def __init__(self, origin: Origin, target: bytes, url: str, host_header: bytes) -> None:
        self.origin = origin
        self.target = target
        self.url = url
        self.host_header = host_header
        #: The host and client headers, for a request without headers of its own.
        self.headers: list[tuple[bytes, bytes]] = []
        # method -> the request without a body or extra headers, encoded (Client._bodiless)
        self.bodiless: dict[str, Prepared] = {}


def _split_url(url: str) -> _Target:
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
    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@-._~")
    query = quote(parts.query, safe="/%!$&'()*+,;=:@-._~?") if parts.query else ""
    target = f"{path}?{query}" if query else path
    return _Target(
        Origin(scheme, host, port),
        target.encode("ascii"),
        f"{scheme}://{authority}{target}",
        authority.encode("ascii"),
    )


def _query(params: QueryLike) -> str:
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


def _encode_body(
    content: Content | None, json: Any
) -> tuple[bytes | None, AsyncIterable[bytes | str] | None, bytes | None]:
    """(bytes body, streamed body, content type) from the ``content``/``json`` arguments."""
    if json is not None:
        if content is not None:
            raise ValueError("pass content= or json=, not both")
        data = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return data, None, b"application/json"
    if content is None:
        return None, None, None
    if isinstance(content, bytes):
        return content, None, None
    if isinstance(content, bytearray | memoryview):
        return bytes(content), None, None
    if isinstance(content, str):
        return content.encode("utf-8"), None, b"text/plain; charset=utf-8"
    if isinstance(content, AsyncIterable):
        return None, content, None
    raise TypeError(
        f"content must be bytes, str or an async iterator of bytes, not {type(content).__name__}"
    )


def _raw_headers(headers: HeadersLike | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    return (headers if isinstance(headers, Headers) else Headers(headers)).raw


class _StreamContext:
    """``async with client.stream(...) as response``: the response, closed on exit."""

    __slots__ = ("_client", "_args", "_response")

    def __init__(self, client: Client, args: tuple[Any, ...]) -> None:
        self._client = client
        self._args = args
        self._response: ClientResponse | None = None

    async def __aenter__(self) -> ClientResponse:
        self._response = await self._client._send(*self._args)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.aclose()


# --- the client --------------------------------------------------------------------------------


class Client:
    """An HTTPS client with a connection pool, strict certificate checks and timeouts by phase.

    Certificates are always verified: against the system's trust store (loaded once per
    process, in a worker thread), or only against ``ca`` when given. The TLS context is made
    on ``async with`` (or the first request), off the event loop.

    Args:
        base_url: prefix for relative URLs (``client.get("/users/7")``).
        headers: sent with every request (a request's own headers replace same-named ones).
        ca: trust only these CA certificate file(s) (PEM).
        cert: a client certificate (PEM, with intermediates) for mutual TLS.
        key: the client certificate's private key (when not inside ``cert``).
        ssl_context: your own ``ssl.SSLContext``, used as it is and never modified (instead
            of ``ca``/``cert``/``key``).
        timeout: a ``Timeout``, seconds for every phase, or ``None`` for none.
        follow_redirects: follow 301/302/303/307/308 (off by default).
        max_redirects: redirects followed before ``TooManyRedirects``.
        allow_insecure_redirects: follow redirects from https:// to http:// too.
        resolve: pin host names to addresses, checking the certificate against the name
            (as ``curl --resolve`` does): ``{"example.test": "127.0.0.1"}``; a key may also be
            ``"host:port"``.
        max_connections: connections open at once, in total.
        max_connections_per_host: connections open at once to one origin.
        keep_alive_expiry: seconds an idle connection is kept for reuse.
        max_decoded_bytes: the largest gzip/deflate-decoded body ``read()`` accepts.
        max_header_bytes: the largest response head accepted.

    Raises:
        ValueError: conflicting or malformed arguments.
        CertificateError: on ``async with`` (or the first request), when the ``ca``, ``cert``
            or ``key`` files cannot be loaded.

    Example::

        async with Client(base_url="https://localhost:8443", ca="pki/ca.pem") as client:
            response = await client.get("/users/7")
            user = await response.raise_for_status().json()
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        headers: HeadersLike | None = None,
        ca: PathLike | Sequence[PathLike] | None = None,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: Timeout | float | None = Timeout(),
        follow_redirects: bool = False,
        max_redirects: int = limits.CLIENT_MAX_REDIRECTS,
        allow_insecure_redirects: bool = False,
        resolve: Mapping[str, str] | None = None,
        max_connections: int = limits.CLIENT_MAX_CONNECTIONS,
        max_connections_per_host: int = limits.CLIENT_MAX_CONNECTIONS_PER_HOST,
        keep_alive_expiry: float = limits.CLIENT_KEEP_ALIVE_EXPIRY,
        max_decoded_bytes: int = limits.CLIENT_MAX_DECODED_BYTES,
        max_header_bytes: int = limits.CLIENT_MAX_HEADER_BYTES,
    ) -> None:
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}"
            )
        if ssl_context is not None and (ca is not None or cert is not None or key is not None):
            raise ValueError("pass ssl_context= or ca=/cert=/key=, not both")
        if key is not None and cert is None:
            raise ValueError("key= needs cert= (the client certificate it belongs to)")
        if max_connections < 1 or max_connections_per_host < 1:
            raise ValueError(
                f"max_connections ({max_connections}) and max_connections_per_host "
                f"({max_connections_per_host}) must be at least 1"
            )
        if base_url is not None:
            _split_url(base_url)  # fail early on a malformed base URL
            base_url = base_url.rstrip("/")
        self.base_url = base_url
        self.timeout = Timeout.of(timeout)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.allow_insecure_redirects = allow_insecure_redirects
        self.max_decoded_bytes = max_decoded_bytes
        self._ca, self._cert, self._key = ca, cert, key
        self._user_context = ssl_context
        self._resolve = dict(resolve or {})
        self._limits = (max_connections, max_connections_per_host, keep_alive_expiry)
        self._max_header_bytes = max_header_bytes
        own = _raw_headers(headers)
        names = {name for name, _ in own}
        self._headers = [h for h in _DEFAULT_HEADERS if h[0] not in names] + own
        # Validate the client's headers once, here, so requests can reuse them unchecked.
        try:
            prepare(Request(b"GET", b"/", [(b"host", b"x"), *self._headers]))
        except LocalProtocolError as exc:
            raise ValueError(f"invalid client header: {exc}") from None
        self._targets: dict[str, _Target] = {}
        self._pool: ConnectionPool | None = None
        self._starting: asyncio.Lock | None = None
        self._is_closed = False

    # --- setup --------------------------------------------------------------------------------

    @property
    def pool(self) -> ConnectionPool | None:
        """The connection pool (``None`` until the client starts)."""
        return self._pool

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context in use (``None`` until the client starts)."""
        return self._pool.connector.ssl_context if self._pool is not None else None

    async def _start(self) -> ConnectionPool:
        if self._is_closed:
            raise ClientError("the client is closed; make a new one")
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                context = self._user_context
                if context is None:
                    if self._ca is None and self._cert is None and _system_context is not None:
                        context = _system_context
                    elif self._ca is None and self._cert is None:
                        context = await asyncio.to_thread(system_context)
                    else:
                        context = await asyncio.to_thread(
                            client_context, self._ca, cert=self._cert, key=self._key
                        )
                connector = Connector(context, self._resolve, self._max_header_bytes)
                total, per_host, expiry = self._limits
                self._pool = ConnectionPool(
                    connector,
                    max_connections=total,
                    max_connections_per_host=per_host,
                    keep_alive_expiry=expiry,
                )
        return self._pool

    async def __aenter__(self) -> Client:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; the client cannot be used afterwards."""
        self._is_closed = True
        if self._pool is not None:
            await self._pool.aclose()

    # --- requests -----------------------------------------------------------------------------

    def _target(self, url: str, params: QueryLike | None) -> _Target:
        if params is None:
            target = self._targets.get(url)
            if target is not None:
                return target
        full = url
        if "://" not in url[:10]:
            if self.base_url is None:
                raise ValueError(f"relative URL {url!r} needs a base_url on the Client")
            full = f"{self.base_url}/{url.lstrip('/')}" if url else self.base_url
        if params:
            query = _query(params)
            if query:
                full += ("&" if "?" in full else "?") + query
        target = _split_url(full.partition("#")[0])
        target.headers = [(b"host", target.host_header), *self._headers]
        if params is None:
            if len(self._targets) >= 512:
                self._targets.clear()
            self._targets[url] = target
        return target

    @staticmethod
    def _bodiless(method: str, target: _Target) -> Prepared:
        """The request without a body or extra headers (most GETs), encoded once per URL.

        Made anew, h11 checks every header with a regex; reused, nothing is checked again
        (benchmarks/client_compare.py).
        """
        prepared = target.bodiless.get(method)
        if prepared is None:
            head = Request(method.encode("ascii"), target.target, target.headers)
            prepared = target.bodiless[method] = prepare(head)
        return prepared

    def _request_head(
        self,
        method: str,
        target: _Target,
        headers: list[tuple[bytes, bytes]] | None,
        length: int | None,
        chunked: bool,
        content_type: bytes | None,
        strip_credentials: bool = False,
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
            h
            for h in self._headers
            if h[0] not in names and not (strip_credentials and h[0] in _CREDENTIALS)
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

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        json: Any = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """Send a request and read the whole response.

        Args:
            method: ``"GET"``, ``"POST"``, ...
            url: absolute, or relative to ``base_url``.
            headers: this request's headers (replace the client's of the same name).
            params: query parameters, appended to the URL's own: ``{"page": 2}``.
            content: the body: bytes (sent with Content-Length), str (UTF-8), or an async
                iterator of bytes (sent chunked).
            json: a value to send as a JSON body instead.
            timeout: this request's timeouts instead of the client's.
            follow_redirects: this request's choice instead of the client's.

        Raises:
            ConnectError, TLSError, CertificateVerifyError: the connection failed.
            ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout: a phase took too long.
            ReadError, WriteError, ServerDisconnectedError: the connection broke.
            TooManyRedirects, DecodingError: see their descriptions.
        """
        response = await self._send(
            method, url, headers, params, content, json, timeout, follow_redirects
        )
        if response._conn is not None and not response._read_received():
            await response.read()
        return response

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        json: Any = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,
        follow_redirects: bool | None = None,
    ) -> _StreamContext:
        """Send a request; the response's body is read as you consume it.

        Example::

            async with client.stream("GET", url) as response:
                async for chunk in response.stream():
                    ...

        The connection goes back to the pool when the body was read to the end, and is
        closed when the block is left early. Arguments and errors are those of ``request``.
        """
        args = (method, url, headers, params, content, json, timeout, follow_redirects)
        return _StreamContext(self, args)

    async def _send(
        self,
        method: str,
        url: str,
        headers: HeadersLike | None,
        params: QueryLike | None,
        content: Content | None,
        json: Any,
        timeout: Timeout | float | None,  # noqa: ASYNC109 - the request's own Timeout
        follow_redirects: bool | None,
    ) -> ClientResponse:
        pool = self._pool
        if pool is None or self._is_closed:
            pool = await self._start()
        method = method.upper()
        phases = self.timeout if timeout is _USE_CLIENT_DEFAULT else Timeout.of(timeout)
        deadline = None if phases.total is None else pool.loop.time() + phases.total
        target = self._target(url, params)
        body, streamed, content_type = _encode_body(content, json)
        own = _raw_headers(headers) if headers is not None else None
        response = await self._send_one(
            pool, method, target, own, body, streamed, content_type, phases, deadline
        )
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        if not follow or response.status not in _REDIRECTS:
            return response
        history: list[ClientResponse] = []
        first_origin, strip = target.origin, False
        while response.status in _REDIRECTS and "location" in response.headers:
            await _discard(response)
            history.append(response)
            if len(history) > self.max_redirects:
                raise TooManyRedirects(
                    f"more than {self.max_redirects} redirects, the last from {response.url}"
                )
            location = urljoin(response.url, response.headers["location"])
            next_target = self._target(location, None)
            if (
                target.origin.scheme == "https"
                and next_target.origin.scheme == "http"
                and not self.allow_insecure_redirects
            ):
                raise ClientError(
                    f"refusing to follow the redirect from {response.url} to {location} "
                    "(https to http); pass allow_insecure_redirects=True to allow it"
                )
            status = response.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body, streamed, content_type = "GET", None, None, None
                if own is not None:
                    own = [h for h in own if h[0] not in _BODY_HEADERS]
            elif streamed is not None:
                raise ClientError(
                    f"cannot follow the {status} redirect to {location}: the request body was "
                    "an iterator and is spent; send bytes to allow replaying it"
                )
            if next_target.origin != first_origin and not strip:
                # Credentials (the client's own and this request's) were meant for the first
                # origin only; once dropped they stay dropped, even on a way back.
                strip = True
                own = [h for h in own or () if h[0] not in _CREDENTIALS and h[0] != b"host"]
            target = next_target
            response = await self._send_one(
                pool, method, target, own, body, streamed, content_type, phases, deadline, strip
            )
        response.history = history
        return response

    async def _send_one(
        self,
        pool: ConnectionPool,
        method: str,
        target: _Target,
        headers: list[tuple[bytes, bytes]] | None,
        body: bytes | None,
        streamed: AsyncIterable[bytes | str] | None,
        content_type: bytes | None,
        phases: Timeout,
        deadline: float | None,
        strip_credentials: bool = False,
    ) -> ClientResponse:
        prepared: Prepared | None = None
        if (
            body is None
            and streamed is None
            and headers is None
            and content_type is None
            and not strip_credentials
            and method not in _EXPECTS_BODY
        ):
            prepared = self._bodiless(method, target)
        else:
            length = None
            if body is not None:
                length = len(body)
            elif streamed is None and method in _EXPECTS_BODY:
                length = 0
            request = self._request_head(
                method,
                target,
                headers,
                length,
                streamed is not None,
                content_type,
                strip_credentials,
            )
        origin = target.origin
        fresh = False
        while True:
            if fresh:
                pool.close_idle(origin)
            conn = pool.take_idle(origin)
            if conn is None:
                pool_timeout, connect_timeout = phases.pool, phases.connect
                if deadline is not None:
                    left = max(deadline - pool.loop.time(), 0.0)
                    pool_timeout = left if pool_timeout is None else min(pool_timeout, left)
                    connect_timeout = (
                        left if connect_timeout is None else min(connect_timeout, left)
                    )
                conn = await pool.acquire(
                    origin, pool_timeout=pool_timeout, connect_timeout=connect_timeout
                )
            reused = conn.requests > 0
            try:
                if prepared is not None:
                    conn.send_prepared(prepared)
                elif body is not None and len(body) > _SLICE:
                    conn.send(request, body[:_SLICE], False)
                    await _send_slices(conn, body, phases.write, deadline)
                else:
                    # The usual case: head and body in one write.
                    conn.send(request, body, streamed is None)
                    if streamed is not None:
                        await _send_stream(conn, streamed, phases.write, deadline)
                head = await conn.receive_head(phases.read, deadline)
            except (ReadError, WriteError):
                has_bytes = conn.has_response_bytes
                conn.abort()
                pool.release(conn)
                if (
                    reused
                    and not fresh
                    and not has_bytes
                    and _is_replayable(method, headers, streamed)
                ):
                    # The server closed a kept-alive connection as we reused it: nothing of
                    # the request was answered, so it is sent once more on a new connection.
                    fresh = True
                    continue
                raise
            except LocalProtocolError as exc:
                conn.abort()
                pool.release(conn)
                raise ValueError(f"the request cannot be sent as given: {exc}") from exc
            except BaseException:
                conn.abort()
                pool.release(conn)
                raise
            return ClientResponse(
                head,
                conn,
                pool,
                target.url,
                method,
                phases.read,
                deadline,
                self.max_decoded_bytes,
            )

    # --- shortcuts ----------------------------------------------------------------------------

    async def get(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("GET", url, ...)``."""
        response = await self._send(
            "GET", url, headers, params, None, None, timeout, follow_redirects
        )
        if response._conn is not None and not response._read_received():
            await response.read()
        return response

    async def head(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("HEAD", url, ...)``."""
        return await self.request(
            "HEAD",
            url,
            headers=headers,
            params=params,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def options(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("OPTIONS", url, ...)``."""
        return await self.request(
            "OPTIONS",
            url,
            headers=headers,
            params=params,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def delete(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("DELETE", url, ...)``."""
        return await self.request(
            "DELETE",
            url,
            headers=headers,
            params=params,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def post(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        json: Any = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("POST", url, ...)``."""
        return await self.request(
            "POST",
            url,
            headers=headers,
            params=params,
            content=content,
            json=json,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def put(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        json: Any = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("PUT", url, ...)``."""
        return await self.request(
            "PUT",
            url,
            headers=headers,
            params=params,
            content=content,
            json=json,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def patch(
        self,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        json: Any = None,
        timeout: Timeout | float | None = _USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - per request, as httpx
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """``request("PATCH", url, ...)``."""
        return await self.request(
            "PATCH",
            url,
            headers=headers,
            params=params,
            content=content,
            json=json,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def __repr__(self) -> str:
        pool = self._pool
        state = "CLOSED" if self._is_closed else ("OPEN" if pool is not None else "NEW")
        where = self.base_url or "no base_url"
        if pool is None:
            return f"<Client [{where}, {state}]>"
        return (
            f"<Client [{where}, {state}, connections: {pool.num_connections} "
            f"({pool.num_active} active, {pool.num_idle} idle)]>"
        )


def _is_replayable(
    method: str,
    headers: list[tuple[bytes, bytes]] | None,
    streamed: AsyncIterable[bytes | str] | None,
) -> bool:
    """Safe to send again: an idempotent method (or an idempotency key) and a body we still
    have. The rule of Go's net/http; a POST is never replayed silently."""
    if streamed is not None:
        return False
    if method in _IDEMPOTENT:
        return True
    return any(name in (b"idempotency-key", b"x-idempotency-key") for name, _ in headers or ())


async def _send_slices(
    conn: ClientConnection, body: bytes, write_timeout: float | None, deadline: float | None
) -> None:
    """The rest of a large body after its first slice, waiting for the transport to drain.

    One large write would go to the socket's buffer whole (encrypted, a second copy), and
    the write timeout could never apply; slices keep both bounded.
    """
    view = memoryview(body)
    size = len(body)
    for start in range(_SLICE, size, _SLICE):
        await conn.drain(write_timeout, deadline)
        conn.send_data(bytes(view[start : start + _SLICE]), end=start + _SLICE >= size)
    await conn.drain(write_timeout, deadline)


async def _send_stream(
    conn: ClientConnection,
    body: AsyncIterable[bytes | str],
    write_timeout: float | None,
    deadline: float | None,
) -> None:
    async for chunk in body:
        data = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        if data:
            conn.send_data(data)
            await conn.drain(write_timeout, deadline)
    conn.send_data(b"", end=True)


async def _discard(response: ClientResponse) -> None:
    """Read a redirect's (small) body so its connection can be reused; close it otherwise."""
    conn = response._conn
    if conn is None:
        return
    if conn.is_complete:
        await response.aclose()
        return
    try:
        total = 0
        async for chunk in response.stream(decode=False):
            total += len(chunk)
            if total > limits.READ_HIGH_WATER:
                break
    finally:
        await response.aclose()
