"""Proxies: which origins go through one (``proxy=``, or ``HTTPS_PROXY``/``HTTP_PROXY``/
``ALL_PROXY`` and ``NO_PROXY`` from the environment), and the ``CONNECT`` tunnel to an https
origin through an HTTP proxy.

This module owns the proxy's URL and credentials, the ``NO_PROXY`` rules (names and their
subdomains, ``*``, IP addresses and networks, an optional port), and opening a tunnel: a TCP
connection to the proxy, ``CONNECT host:port`` read and answered with h11 (through the
``http11`` driver), then the transport handed back for the TLS handshake with the origin.
It knows nothing of pools or requests; http:// origins are sent to the proxy in absolute
form by the connection (``connector.py``), not tunnelled.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from ..errors import ConnectError, ProxyError, RemoteProtocolError
from ..http11 import NEED_DATA, Driver, EndOfMessage, Request, Response
from .connection import Origin

__all__ = ["Proxy", "ProxyRoutes", "client_routes", "open_tunnel", "parse_proxy"]

# The proxy's answer to CONNECT is a head and, when refused, a short page: no more is read.
_MAX_ANSWER = 64 * 1024


class Proxy(NamedTuple):
    """An HTTP proxy: where it listens, and the ``Proxy-Authorization`` value, if any."""

    host: str
    port: int
    authorization: bytes | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (the scheme may be left out) as a ``Proxy``.

    Raises:
        ValueError: not an http:// proxy URL, or malformed.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # as curl reads HTTPS_PROXY=proxy.example:3128
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid proxy URL {url!r}: {exc}") from None
    if parts.scheme.lower() != "http":
        raise ValueError(
            f"proxy {url!r}: only http:// proxies are supported (https:// origins are "
            "tunnelled through them with CONNECT, still encrypted end to end)"
        )
    if not parts.hostname:
        raise ValueError(f"proxy URL {url!r} has no host")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = b"Basic " + base64.b64encode(pair.encode())
    return Proxy(parts.hostname.lower(), 80 if port is None else port, authorization)


class _Exempt(NamedTuple):
    """One ``NO_PROXY`` entry."""

    host: str  # a name (matches it and its subdomains), or "" for a network
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None


def _parse_no_proxy(value: str) -> tuple[bool, list[_Exempt]]:
    everything, entries = False, []
    for raw in value.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            everything = True
            continue
        port = None
        if entry.startswith("["):  # [::1]:8443
            host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
            entry = host
        elif entry.count(":") == 1:
            host, _, digits = entry.partition(":")
            if digits.isdigit():
                entry, port = host, int(digits)
        try:
            entries.append(_Exempt("", ipaddress.ip_network(entry, strict=False), port))
        except ValueError:
            entries.append(_Exempt(entry.lstrip(".").lstrip("*").lstrip("."), None, port))
    return everything, entries


def _environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """``{"https": url, "http": url, "all": url, "no": hosts}`` from ``*_proxy`` variables,
    read as urllib and curl read them: a lowercase name wins over its uppercase twin."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if value and name[-6:].lower() == "_proxy" and not name.islower():
            found[name[:-6].lower()] = value
    if "REQUEST_METHOD" in environ:
        # Under CGI, HTTP_PROXY comes from the request's "Proxy:" header ("httpoxy").
        found.pop("http", None)
    for name, value in environ.items():
        if name[-6:] == "_proxy" and name.islower():
            if value:
                found[name[:-6]] = value
            else:
                found.pop(name[:-6], None)
    return found


class ProxyRoutes:
    """Which proxy, if any, each origin goes through.

    Args:
        https: the proxy for https:// origins (tunnelled with ``CONNECT``), or ``None``.
        http: the proxy for http:// origins, or ``None``.
        no_proxy: ``NO_PROXY``'s form: comma-separated host names (each also covers its
            subdomains; a leading dot is allowed), IP addresses or networks
            (``10.0.0.0/8``), each optionally ``:port``; ``*`` exempts every host.
    """

    def __init__(
        self, https: Proxy | None = None, http: Proxy | None = None, no_proxy: str = ""
    ) -> None:
        self.https = https
        self.http = http
        self._everything, self._exempt = _parse_no_proxy(no_proxy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyRoutes | None:
        """The routes ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` set
        (lowercase names too), or ``None`` when they name no proxy.

        Raises:
            ValueError: a proxy variable holds an unusable URL (named in the message).
        """
        found = _environment_proxies(os.environ if environ is None else environ)
        every = found.get("all")
        chosen: dict[str, Proxy | None] = {}
        for scheme in ("https", "http"):
            value = found.get(scheme) or every
            try:
                chosen[scheme] = parse_proxy(value) if value else None
            except ValueError as exc:
                raise ValueError(f"{scheme.upper()}_PROXY: {exc}") from None
        if chosen["https"] is None and chosen["http"] is None:
            return None
        return cls(chosen["https"], chosen["http"], found.get("no", ""))

    def is_exempt(self, origin: Origin) -> bool:
        """True when ``NO_PROXY`` sends ``origin`` direct."""
        if self._everything:
            return True
        host = origin.host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for entry in self._exempt:
            if entry.port is not None and entry.port != origin.port:
                continue
            if entry.network is not None:
                if address is not None and address in entry.network:
                    return True
            elif host == entry.host or host.endswith("." + entry.host):
                return True
        return False

    def for_origin(self, origin: Origin) -> Proxy | None:
        """The proxy ``origin`` goes through, or ``None`` for a direct connection."""
        proxy = self.https if origin.scheme == "https" else self.http
        if proxy is None or self.is_exempt(origin):
            return None
        return proxy


def client_routes(proxy: str | None, trust_env: bool) -> ProxyRoutes | None:
    """A client's proxies: ``proxy`` for every origin (``NO_PROXY`` still applying when
    ``trust_env``, as curl does), else the environment's when ``trust_env``.

    Raises:
        ValueError: ``proxy`` or a proxy variable is not a usable proxy URL.
    """
    if proxy is None:
        return ProxyRoutes.from_env() if trust_env else None
    chosen = parse_proxy(proxy)
    no_proxy = (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "") if trust_env else ""
    return ProxyRoutes(chosen, chosen, no_proxy)


class _Tunnel(asyncio.Protocol):
    """The proxy connection while ``CONNECT`` is asked and answered."""

    def __init__(self, target: bytes, authorization: bytes | None) -> None:
        self.driver = Driver("client", plain=False)
        self.answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        headers = [(b"host", target)]
        if authorization is not None:
            headers.append((b"proxy-authorization", authorization))
        self._request = Request(b"CONNECT", target, headers)
        self._received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        data = self.driver.send(self._request) + self.driver.send(EndOfMessage())
        transport.write(data)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self._received += len(data)
        try:
            self.driver.receive_data(data)
            event = self.driver.next_event()
        except RemoteProtocolError as exc:
            self.answer.set_exception(ConnectError(f"the proxy's answer is not HTTP: {exc}"))
            return
        if isinstance(event, Response):
            self.answer.set_result(event)
        elif event is NEED_DATA and self._received > _MAX_ANSWER:
            self.answer.set_exception(ConnectError("the proxy's answer to CONNECT is too long"))

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(
                ConnectError("the proxy closed the connection before answering CONNECT")
            )


async def open_tunnel(proxy: Proxy, origin: Origin, address: str) -> asyncio.Transport:
    """A TCP connection to ``proxy`` tunnelled to ``address:origin.port`` with ``CONNECT``.

    Raises:
        ConnectError: the proxy cannot be reached, or its answer is not HTTP.
        ProxyError: the proxy refused the tunnel (a non-2xx answer: 403, 407, 502...).
    """
    loop = asyncio.get_running_loop()
    host = f"[{address}]" if ":" in address else address
    target = f"{host}:{origin.port}".encode("idna")
    # The caller bounds it all, with the TLS handshake, in one asyncio.timeout.
    try:
        transport, tunnel = await loop.create_connection(
            lambda: _Tunnel(target, proxy.authorization), proxy.host, proxy.port
        )
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectError(f"cannot connect to the proxy {proxy} for {origin}: {reason}") from exc
    try:
        answer = await tunnel.answer
    except BaseException:
        transport.abort()
        raise
    if not 200 <= answer.status_code < 300:
        transport.abort()
        reason = answer.reason.decode("latin-1")
        hint = {
            407: "the proxy wants credentials: put them in its URL, http://user:pass@host:port",
            403: "the proxy does not allow tunnels to this host or port",
        }.get(answer.status_code, "see the proxy's logs")
        raise ProxyError(
            f"the proxy {proxy} refused to tunnel to {origin}: "
            f"{answer.status_code} {reason} ({hint})",
            answer.status_code,
        )
    trailing, _ = tunnel.driver.trailing_data
    if trailing:  # the origin speaks first only after our TLS hello: bytes now are not TLS
        transport.abort()
        raise ConnectError(f"the proxy {proxy} sent bytes after accepting the tunnel")
    return transport
