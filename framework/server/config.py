"""``ServerConfig``: the server's limits and timeouts in one frozen value.

The defaults are those of ``limits.py``, where each has its precedent; a connection reads its
settings from here and from nothing else of the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import limits
from ..accesslog import LogFormat
from .proxy import LOOPBACK, ForwardedAllow

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The limits and timeouts of a server, in seconds and bytes.

    Args:
        keep_alive_timeout: how long an idle kept-alive connection stays open.
        head_timeout: how long a request head may take once its first byte arrived.
        tls_handshake_timeout: how long the TLS handshake may take.
        max_header_bytes: the largest request head; 431 above it.
        max_request_line_bytes: the longest request line; 414 above it.
        max_header_count: the most header fields in a request; 431 above it.
        max_body_bytes: the largest body ``await request.body()`` buffers; 413 above it (a
            route's ``max_body_size=`` overrides it).
        max_stream_body_bytes: the largest body ``request.stream()`` reads; 413 above it
            (``None``: unlimited).
        body_timeout: the longest silence while the handler waits for the request body; 408
            after it.
        request_timeout: the longest a whole request may take to arrive (``None``: no limit).
        write_timeout: how long a response may wait on a client that does not read.
        max_connections: open connections (handshakes included) at which the server stops
            accepting; the next wait in the kernel's backlog.
        max_in_flight: requests handled at once above which it answers 503 (``None``: no
            limit).
        max_requests_per_connection: requests served on a connection before it is closed
            (``None``: no limit).
        retry_after: the seconds a 503 for too many requests asks the client to wait.
        backlog: connections the kernel queues before they are accepted.
        access_log: log one line per request to the ``framework.access`` logger.
        access_log_format: ``"text"`` (the line) or ``"json"`` (one JSON object a line).
        forwarded_allow_ips: the peers whose ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
            ``Forwarded`` headers set ``request.client`` and ``request.scheme``: addresses and
            networks separated by commas, ``"*"`` for all, ``""`` for none (loopback by
            default).
        ws_max_message_bytes: the largest WebSocket message; 1009 above it.
        ws_queue_messages: WebSocket messages held for a handler before reading pauses.
        ws_ping_interval: seconds between WebSocket keep-alive pings (``None``: none).
        ws_ping_timeout: how long a pong may take; 1011 after it.
        ws_close_timeout: how long to wait for the peer's close frame after ours.
        h11_only: read every request with h11, none on the driver's plain path (the
            differential tests prove the two read alike; this is for whoever wants h11 alone).

    Example::

        Server(app, config=ServerConfig(keep_alive_timeout=30, max_header_bytes=32 * 1024))
    """

    keep_alive_timeout: float = limits.KEEP_ALIVE_TIMEOUT
    head_timeout: float = limits.REQUEST_HEAD_TIMEOUT
    tls_handshake_timeout: float = limits.TLS_HANDSHAKE_TIMEOUT
    max_header_bytes: int = limits.MAX_HEADER_BYTES
    max_request_line_bytes: int = limits.MAX_REQUEST_LINE_BYTES
    max_header_count: int = limits.MAX_HEADER_COUNT
    max_body_bytes: int = limits.MAX_BODY_BYTES
    max_stream_body_bytes: int | None = limits.MAX_STREAM_BODY_BYTES
    body_timeout: float = limits.BODY_TIMEOUT
    request_timeout: float | None = limits.REQUEST_TIMEOUT
    write_timeout: float = limits.WRITE_TIMEOUT
    max_connections: int = limits.MAX_CONNECTIONS
    max_in_flight: int | None = limits.MAX_IN_FLIGHT
    max_requests_per_connection: int | None = limits.MAX_REQUESTS_PER_CONNECTION
    retry_after: int = limits.RETRY_AFTER
    backlog: int = limits.BACKLOG
    ws_max_message_bytes: int = limits.WS_MAX_MESSAGE_BYTES
    ws_queue_messages: int = limits.WS_QUEUE_MESSAGES
    ws_ping_interval: float | None = limits.WS_PING_INTERVAL
    ws_ping_timeout: float = limits.WS_PING_TIMEOUT
    ws_close_timeout: float = limits.WS_CLOSE_TIMEOUT
    access_log: bool = False
    access_log_format: LogFormat = "text"
    forwarded_allow_ips: str | Sequence[str] = LOOPBACK
    h11_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.forwarded_allow_ips, str):  # a list of addresses is welcome too
            object.__setattr__(self, "forwarded_allow_ips", ",".join(self.forwarded_allow_ips))
        ForwardedAllow(self.forwarded_allow_ips)  # raises ValueError naming a bad entry
        if self.access_log_format not in ("text", "json"):
            raise ValueError(
                f"access_log_format must be 'text' or 'json', not {self.access_log_format!r}"
            )
        for name in _SECONDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        for name in _COUNTS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")


_SECONDS = (
    "keep_alive_timeout",
    "head_timeout",
    "tls_handshake_timeout",
    "body_timeout",
    "request_timeout",
    "write_timeout",
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_close_timeout",
)
_COUNTS = (
    "max_header_bytes",
    "max_request_line_bytes",
    "max_header_count",
    "max_body_bytes",
    "max_stream_body_bytes",
    "max_connections",
    "max_in_flight",
    "max_requests_per_connection",
    "retry_after",
    "backlog",
    "ws_max_message_bytes",
    "ws_queue_messages",
)
#: Settings where ``None`` means "no limit".
_OPTIONAL = frozenset(
    {
        "max_stream_body_bytes",
        "request_timeout",
        "max_in_flight",
        "max_requests_per_connection",
        "ws_ping_interval",
    }
)
