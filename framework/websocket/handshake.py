"""The WebSocket opening handshake (RFC 6455 section 4), read from a ``Request``.

Pure functions: whether a request asks for a WebSocket, the subprotocols it offers, and the
headers of the ``101 Switching Protocols`` answer. The HTTP side (parsing, writing the 101) is
the server's driver; the frames after it are ``connection.py``'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ..messages import Request

__all__ = [
    "accept_key",
    "is_websocket_request",
    "offered_subprotocols",
    "refusal",
    "switch_headers",
]

# RFC 6455 1.3: appended to the client's key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _tokens(request: Request, name: str) -> set[str]:
    return {
        token.strip().lower()
        for value in request.headers.get_all(name)
        for token in value.split(",")
        if token.strip()
    }


def is_websocket_request(request: Request) -> bool:
    """True when ``request`` asks to switch to WebSocket (``Upgrade: websocket``)."""
    # Asked of every request an ASGI app gets: one pass over the names settles most.
    for name, value in request.headers.raw:
        if name == b"upgrade" and b"websocket" in value.lower():
            return "websocket" in _tokens(request, "upgrade")
    return False


def refusal(request: Request) -> str | None:
    """Why ``request`` is not a valid opening handshake, or ``None`` when it is one."""
    if request.method != "GET":
        return "a WebSocket handshake is a GET request"
    if request.http_version != "1.1":
        return "a WebSocket handshake needs HTTP/1.1"
    if "upgrade" not in _tokens(request, "connection"):
        return "Connection: Upgrade is missing"
    if (request.headers.get("sec-websocket-version") or "").strip() != "13":
        return "Sec-WebSocket-Version must be 13"
    key = (request.headers.get("sec-websocket-key") or "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes in base64"
    except (binascii.Error, ValueError):
        return "Sec-WebSocket-Key is not base64"
    return None


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(key.strip().encode("ascii") + _GUID).digest()  # noqa: S324 - RFC 6455
    return base64.b64encode(digest).decode("ascii")


def offered_subprotocols(request: Request) -> list[str]:
    """The subprotocols the client offers, in its order of preference."""
    return [
        token.strip()
        for value in request.headers.get_all("sec-websocket-protocol")
        for token in value.split(",")
        if token.strip()
    ]


def switch_headers(
    request: Request, subprotocol: str | None, extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The headers of the ``101`` answer to ``request``.

    Raises:
        ValueError: ``subprotocol`` is not one the client offered.
    """
    if subprotocol is not None and subprotocol not in offered_subprotocols(request):
        raise ValueError(f"the client did not offer the subprotocol {subprotocol!r}")
    key = request.headers.get("sec-websocket-key") or ""
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key(key).encode("ascii")),
    ]
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    return headers + extra
