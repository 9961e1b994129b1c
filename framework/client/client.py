"""``Client``: the asyncio HTTPS client made of the server's parts.

This module owns what the caller configures and calls: the base URL and the client's defaults
(headers, timeouts, redirects, TLS trust), following redirects, and the shortcut methods. Each
call becomes a ``ClientRequest`` (``request.py``); the pool (``pool.py``) owns the exchange and
hands back a connection with the response's head, which becomes a ``ClientResponse``
(``response.py``). It knows nothing of how requests are framed or connections shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeAlias, Unpack
from urllib.parse import urljoin

from .. import limits
from ..errors import (
    ClientError,
    TooManyRedirects,
)
from ..messages import HeadersLike
from ..websocket import WebSocket
from ..websocket.client import connect as ws_connect
from .auth import AuthLike, authorize, to_auth
from .connection import ClientConnection
from .connector import Connector, load_context
from .cookies import Cookies, CookiesLike, merge_cookie_header
from .multipart import DataLike, FilesLike
from .pool import ConnectionPool, check_bounds, closed_error
from .proxy import client_routes
from .request import (
    BODY_HEADERS,
    CREDENTIALS,
    NO_BODY,
    Body,
    ClientRequest,
    Content,
    QueryLike,
    Target,
    Timeout,
    build_request,
    client_headers,
    encode_body,
    encode_query,
    raw_headers,
    split_url,
)
from .response import ClientResponse
from .retry import RETRIABLE, send_again
from .shortcuts import BodyOptions, Shortcuts

__all__ = ["Client"]

PathLike: TypeAlias = "str | os.PathLike[str]"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USE_CLIENT_DEFAULT: Any = object()
_DEFAULT_TIMEOUT = Timeout()
# URLs whose split form is kept, per client; past it the cache starts over.
_TARGETS_CACHED = 512


class _StreamContext:
    """``async with client.stream(...) as response``: the response, closed on exit."""

    __slots__ = ("_client", "_args", "_response")

    def __init__(self, client: Client, method: str, url: str, options: BodyOptions) -> None:
        self._client = client
        o = options
        body = encode_body(o.get("content"), o.get("json"), o.get("data"), o.get("files"))
        self._args: tuple[Any, ...] = (
            method,
            url,
            o.get("headers"),
            o.get("params"),
            body,
            o.get("cookies"),
            o.get("auth"),
            o.get("timeout", _USE_CLIENT_DEFAULT),
            o.get("follow_redirects"),
        )
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


class Client(Shortcuts[Coroutine[Any, Any, ClientResponse]]):
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
        crl: refuse server certificates this CRL (PEM file) revokes; a CRL inside the ``ca``
            file is not used. The handshake also fails when the CRL has expired or is not from
            the server's CA.
        ssl_context: your own ``ssl.SSLContext``, used as it is and never modified (instead
            of ``ca``/``cert``/``key``/``crl``).
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
        max_decoded_bytes: the largest gzip/deflate-decoded body a response reads (and the
            longest line ``aiter_lines()`` yields).
        max_header_bytes: the largest response head accepted.
        h11_only: read every response with h11, none on the plain-message path (the
            differential tests prove the two read alike; this is for whoever wants h11 alone).
        auth: credentials for every request: ``(user, password)`` (Basic), ``BearerAuth``,
            or a callable given the request (``PendingRequest``) that sets its headers.
        cookies: cookies to start the jar with (``client.cookies``); the jar keeps what
            servers set, redirects included, and sends each cookie only where its domain,
            path and ``Secure`` flag allow.
        proxy: an ``http://[user:pass@]host:port`` proxy for every origin: https ones are
            tunnelled with ``CONNECT`` (TLS still end to end), http ones forwarded.
        trust_env: read ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (when
            ``proxy`` is not given; ``NO_PROXY`` applies to ``proxy`` too).
        retries: times a request is tried again when connecting failed (refused, timed
            out; never a certificate or proxy refusal), and, for requests safe to replay
            (idempotent, body in memory), when the connection broke before the response.
            Pauses between tries start at 0.1 s and double, with jitter.

    Raises:
        ValueError: conflicting or malformed arguments, or a proxy URL (``proxy``, or one of
            the environment's) that cannot be used.
        CertificateError: on ``async with`` (or the first request), when the ``ca``, ``cert``
            or ``key`` files cannot be loaded.

    Example::

        async with Client(base_url="https://localhost:8443", ca="pki/ca.pem") as client:
            response = await client.get("/users/7")
            user = response.raise_for_status().json()
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        headers: HeadersLike | None = None,
        ca: PathLike | Sequence[PathLike] | None = None,
        cert: PathLike | None = None,
        key: PathLike | None = None,
        crl: PathLike | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: Timeout | float | None = _DEFAULT_TIMEOUT,
        follow_redirects: bool = False,
        max_redirects: int = limits.CLIENT_MAX_REDIRECTS,
        allow_insecure_redirects: bool = False,
        resolve: Mapping[str, str] | None = None,
        max_connections: int = limits.CLIENT_MAX_CONNECTIONS,
        max_connections_per_host: int = limits.CLIENT_MAX_CONNECTIONS_PER_HOST,
        keep_alive_expiry: float = limits.CLIENT_KEEP_ALIVE_EXPIRY,
        max_decoded_bytes: int = limits.CLIENT_MAX_DECODED_BYTES,
        max_header_bytes: int = limits.CLIENT_MAX_HEADER_BYTES,
        h11_only: bool = False,
        auth: AuthLike | None = None,
        cookies: CookiesLike | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        retries: int = 0,
    ) -> None:
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}"
            )
        if ssl_context is not None and any(x is not None for x in (ca, cert, key, crl)):
            raise ValueError("pass ssl_context= or ca=/cert=/key=/crl=, not both")
        if key is not None and cert is None:
            raise ValueError("key= needs cert= (the client certificate it belongs to)")
        check_bounds(max_connections, max_connections_per_host)
        if base_url is not None:
            split_url(base_url)  # fail early on a malformed base URL
            base_url = base_url.rstrip("/")
        self.base_url = base_url
        self.timeout = Timeout.of(timeout)
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.allow_insecure_redirects = allow_insecure_redirects
        self.max_decoded_bytes = max_decoded_bytes
        self._ca, self._cert, self._key, self._crl = ca, cert, key, crl
        self._user_context = ssl_context
        self._resolve = dict(resolve or {})
        self._limits = (max_connections, max_connections_per_host, keep_alive_expiry)
        self._max_header_bytes = max_header_bytes
        self._h11_only = h11_only
        self._headers = client_headers(headers)
        self._targets: dict[str, Target] = {}
        self._pool: ConnectionPool | None = None
        self._starting: asyncio.Lock | None = None
        self._is_closed = False
        self.auth = to_auth(auth)
        self._cookies = Cookies(cookies)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ValueError(f"retries must be a whole number, 0 or more, not {retries!r}")
        self.retries = retries
        self._proxies = client_routes(proxy, trust_env)

    # --- setup --------------------------------------------------------------------------------

    @property
    def cookies(self) -> Cookies:
        """The cookie jar: what servers set, sent back where the cookie rules allow."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: CookiesLike) -> None:
        self._cookies = Cookies(cookies)

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
            raise closed_error()
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                context = self._user_context
                if context is None:
                    context = await load_context(self._ca, self._cert, self._key, self._crl)
                connector = Connector(
                    context, self._resolve, self._max_header_bytes, self._h11_only, self._proxies
                )
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

    def _target(self, url: str, params: QueryLike | None) -> Target:
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
            query = encode_query(params)
            if query:
                full += ("&" if "?" in full else "?") + query
        target = split_url(full.partition("#")[0])
        proxies = self._proxies
        if proxies is not None and target.origin.scheme == "http":
            proxy = proxies.for_origin(target.origin)
            if proxy is not None:
                # A forward proxy is asked for the whole URL (RFC 9112 3.2.2).
                target.target = target.url.encode("ascii")
        target.headers = [(b"host", target.host_header), *self._headers]
        if params is None:
            if len(self._targets) >= _TARGETS_CACHED:
                self._targets.clear()
            self._targets[url] = target
        return target

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: HeadersLike | None = None,
        params: QueryLike | None = None,
        content: Content | None = None,
        data: DataLike | None = None,
        files: FilesLike | None = None,
        json: Any = None,
        cookies: dict[str, str] | None = None,
        auth: AuthLike | None = None,
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
            data: form fields, sent ``application/x-www-form-urlencoded`` (or as the fields of
                ``multipart/form-data`` with ``files``).
            files: uploads, sent ``multipart/form-data``: ``{"name": content}``, or
                ``{"name": (filename, content[, content type])}``; content is bytes, str or
                a file opened ``"rb"`` (read whole).
            json: a value to send as a JSON body instead.
            cookies: cookies for this request only, besides the jar's.
            auth: this request's credentials instead of the client's (see ``Client``).
            timeout: this request's timeouts instead of the client's.
            follow_redirects: this request's choice instead of the client's.

        Raises:
            ConnectError, TLSError, CertificateVerifyError, ProxyError: the connection failed.
            ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout: a phase took too long.
            ReadError, WriteError, ServerDisconnectedError: the connection broke.
            TooManyRedirects, DecodingError: see their descriptions.
        """
        body = encode_body(content, json, data, files)
        response = await self._send(
            method, url, headers, params, body, cookies, auth, timeout, follow_redirects
        )
        if not response._read_received():
            await response.aread()
        return response

    @contextlib.asynccontextmanager
    async def websocket(
        self,
        url: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AsyncIterator[WebSocket]:
        """Open a WebSocket with this client's TLS policy; it is closed when the block ends.

        ``async with client.websocket("wss://host/ws") as ws:`` verifies the server as this
        client's requests do (its ``ca``, its client certificate for mutual TLS); a relative
        URL joins ``base_url`` (``https`` becomes ``wss``). ``options`` are ``WebSocket``'s
        limits (``max_message_size``, ``ping_interval``...).

        Raises:
            ConnectError: the connection or TLS handshake failed.
            RemoteProtocolError: the server did not accept the WebSocket.
        """
        pool = await self._start()
        if "://" not in url:
            if self.base_url is None:
                raise ValueError(f"relative URL {url!r} needs a base_url on the Client")
            url = f"{self.base_url}/{url.lstrip('/')}"
        for plain, secure in (("https://", "wss://"), ("http://", "ws://")):
            if url.startswith(plain):
                url = secure + url[len(plain) :]
        opening = ws_connect(
            url,
            ssl_context=pool.connector.ssl_context,
            subprotocols=subprotocols,
            headers=headers,
            **options,
        )
        async with opening as ws:
            yield ws

    def stream(self, method: str, url: str, **options: Unpack[BodyOptions]) -> _StreamContext:
        """Send a request; the response's body is read as you consume it.

        Example::

            async with client.stream("GET", url) as response:
                async for chunk in response.aiter_bytes():
                    ...

        The connection goes back to the pool when the body was read to the end, and is
        closed when the block is left early. Arguments and errors are those of ``request``.
        """
        return _StreamContext(self, method, url, options)

    async def _send(
        self,
        method: str,
        url: str,
        headers: HeadersLike | None,
        params: QueryLike | None,
        body: Body,
        cookies: Mapping[str, str] | None,
        auth: AuthLike | None,
        timeout: Timeout | float | None,  # noqa: ASYNC109 - the request's own Timeout
        follow: bool | None,
    ) -> ClientResponse:
        pool = self._pool
        if pool is None or self._is_closed:
            pool = await self._start()
        method = method.upper()
        phases = self.timeout if timeout is _USE_CLIENT_DEFAULT else Timeout.of(timeout)
        deadline = None if phases.total is None else pool.loop.time() + phases.total
        target = self._target(url, params)
        own = raw_headers(headers) if headers is not None else None
        credentials = to_auth(auth) if auth is not None else self.auth
        if credentials is not None:
            own = await authorize(credentials, method, target.url, own)
        request = build_request(
            method, target, self._headers, self._hop(target, own, cookies), body
        )
        response = await self._exchange(pool, request, phases, deadline)
        follow = self.follow_redirects if follow is None else follow
        if not follow or response.status not in _REDIRECTS:
            return response
        return await self._follow(pool, response, request, own, body, phases, deadline)

    def _hop(
        self,
        target: Target,
        own: list[tuple[bytes, bytes]] | None,
        cookies: Mapping[str, str] | None,
    ) -> list[tuple[bytes, bytes]] | None:
        """A request's own headers with what this hop adds: the cookies the jar (and
        ``cookies``) has for its URL, and a forward proxy's credentials."""
        if not cookies and not self._cookies.maybe_any and self._proxies is None:
            return own  # the usual case, decided without looking into the jar
        extra: list[tuple[bytes, bytes]] = []
        if (self.cookies or cookies) and not any(name == b"cookie" for name, _ in own or ()):
            # (A Cookie header of the caller's own wins.)
            value = merge_cookie_header(self.cookies.header_for(target.url), cookies)
            if value:
                try:
                    extra.append((b"cookie", value.encode("latin-1")))
                except UnicodeEncodeError:
                    raise ValueError(
                        f"cookie {value!r} cannot be sent: HTTP headers carry Latin-1 only; "
                        "percent-encode the value (urllib.parse.quote)"
                    ) from None
        if self._proxies is not None and target.origin.scheme == "http":
            proxy = self._proxies.for_origin(target.origin)
            if proxy is not None and proxy.authorization is not None:
                extra.append((b"proxy-authorization", proxy.authorization))
        return [*(own or ()), *extra] if extra else own

    async def _exchange(
        self,
        pool: ConnectionPool,
        request: ClientRequest,
        phases: Timeout,
        deadline: float | None,
    ) -> ClientResponse:
        """Send ``request`` (again after a connect failure, with ``retries``); its response."""
        started = pool.loop.time()
        try:
            conn = await pool.send(request, phases, deadline)
        except RETRIABLE as exc:
            if not self.retries:
                raise
            conn = await send_again(pool, request, phases, deadline, exc, self.retries)
        return self._received(conn, pool, request, phases, deadline, started)

    def _received(
        self,
        conn: ClientConnection,
        pool: ConnectionPool,
        request: ClientRequest,
        phases: Timeout,
        deadline: float | None,
        started: float,
    ) -> ClientResponse:
        """The response whose head ``conn`` received; the jar keeps the cookies it sets."""
        response = ClientResponse(
            conn, pool, request, phases.read, deadline, self.max_decoded_bytes, started
        )
        for name, _ in response._raw:
            if name == b"set-cookie":
                self._cookies.extract(request.url, response.headers)
                break
        return response

    async def _follow(
        self,
        pool: ConnectionPool,
        response: ClientResponse,
        request: ClientRequest,
        headers: list[tuple[bytes, bytes]] | None,
        body: Body,
        phases: Timeout,
        deadline: float | None,
    ) -> ClientResponse:
        """Follow the redirects from ``response``, the answer to ``request``."""
        history: list[ClientResponse] = []
        method, origin = request.method, request.origin
        first_origin, strip = origin, False
        while response.status in _REDIRECTS and "location" in response.headers:
            await response._discard()
            history.append(response)
            if len(history) > self.max_redirects:
                raise TooManyRedirects(
                    f"more than {self.max_redirects} redirects, the last from {response.url}"
                )
            location = urljoin(response.url, response.headers["location"])
            target = self._target(location, None)
            if (
                origin.scheme == "https"
                and target.origin.scheme == "http"
                and not self.allow_insecure_redirects
            ):
                raise ClientError(
                    f"refusing to follow the redirect from {response.url} to {location} "
                    "(https to http); pass allow_insecure_redirects=True to allow it"
                )
            status = response.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", NO_BODY
                if headers is not None:
                    headers = [h for h in headers if h[0] not in BODY_HEADERS]
            elif body.stream is not None:
                raise ClientError(
                    f"cannot follow the {status} redirect to {location}: the request body was "
                    "an iterator and is spent; send bytes to allow replaying it"
                )
            if target.origin != first_origin and not strip:
                # Credentials (the client's own and this request's) were meant for the first
                # origin only; once dropped they stay dropped, even on a way back.
                strip = True
                headers = [h for h in headers or () if h[0] not in CREDENTIALS and h[0] != b"host"]
            origin = target.origin
            # The jar's cookies are chosen again for each URL; a request's own go nowhere else.
            hop = self._hop(target, headers, None)
            request = build_request(method, target, self._headers, hop, body, strip)
            response = await self._exchange(pool, request, phases, deadline)
        response.history = history
        return response

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
