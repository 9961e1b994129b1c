"""The ASGI vocabulary: message types, and the ``http`` scope made from a ``Request``.

The scope follows the ASGI HTTP connection scope (spec 2.3, as uvicorn reports it) and the
TLS extension (``extensions["tls"]``) for requests that arrived over HTTPS.
"""

from __future__ import annotations

import base64
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

from ..messages import Request, TLSInfo

__all__ = [
    "ASGIApp",
    "ASGI_VERSION",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "http_scope",
    "tls_extension",
]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: ``async (scope, receive, send) -> None``.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}

# The TLS extension gives versions and cipher suites as their IANA numbers; the ssl module
# gives names. The suites below are those our TLS policy (and OpenSSL's default) can agree.
_TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302, "TLSv1": 0x0301}
_CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E,
    "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "DHE-RSA-CHACHA20-POLY1305": 0xCCAA,
}

# One connection's TLSInfo serves each of its requests: its extension is made once.
_tls_cache: weakref.WeakKeyDictionary[TLSInfo, dict[str, Any]] = weakref.WeakKeyDictionary()


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii")  # 76-column lines
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def tls_extension(tls: TLSInfo, server_cert: str | None = None) -> dict[str, Any]:
    """The ASGI TLS extension's fields for a connection.

    ``server_cert`` is the PEM certificate the server presented, when known. Only verified
    client certificates reach a request here, so ``client_cert_error`` is always ``None``;
    the chain holds the client's own certificate (the ssl module shows no more of it).
    """
    cached = _tls_cache.get(tls)
    if cached is not None and cached["server_cert"] == server_cert:
        return cached
    chain: list[str] = []
    name: str | None = None
    if tls.peer_certificate_der is not None:
        chain.append(_pem(tls.peer_certificate_der))
        name = tls.peer_certificate.subject.rfc4514_string()
    ext = {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(tls.version or ""),
        "cipher_suite": _CIPHER_SUITES.get(tls.cipher or ""),
    }
    _tls_cache[tls] = ext
    return ext


def http_scope(
    request: Request,
    root_path: str,
    state: dict[str, Any],
    server_cert: str | None = None,
) -> Scope:
    """The ``http`` scope of ``request``, as the ASGI spec and uvicorn give it.

    ``path`` and ``raw_path`` start with ``root_path`` (the mount point behind a proxy), as
    the spec asks since 2.3's clarification and uvicorn does; ``state`` is a shallow copy of
    the lifespan state.
    """
    tls = request.tls
    scope: Scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "method": request.method,
        "scheme": request.scheme,
        "path": root_path + request.path if root_path else request.path,
        "raw_path": root_path.encode("latin-1") + request.raw_path
        if root_path
        else request.raw_path,
        "query_string": request.query_string,
        "root_path": root_path,
        "headers": request.headers.raw,
        "client": request.client,
        "server": request.server,
        "state": state.copy(),
    }
    if tls is not None:
        scope["extensions"] = {"tls": tls_extension(tls, server_cert)}
    return scope
