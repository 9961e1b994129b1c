"""``ServerConfig``: the server's limits and timeouts in one frozen value.

The defaults are those of ``limits.py``, where each has its precedent; a connection reads its
settings from here and from nothing else of the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import limits

__all__ = ["ServerConfig"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The limits and timeouts of a server, in seconds and bytes.

    Args:
        keep_alive_timeout: how long an idle kept-alive connection stays open.
        head_timeout: how long a request head may take once its first byte arrived.
        tls_handshake_timeout: how long the TLS handshake may take.
        max_header_bytes: the largest request head; 431 above it.
        backlog: connections the kernel queues before they are accepted.
        access_log: log one line per request to the ``framework.access`` logger.
        h11_only: read every request with h11, none on the driver's plain path (the
            differential tests prove the two read alike; this is for whoever wants h11 alone).

    Example::

        Server(app, config=ServerConfig(keep_alive_timeout=30, max_header_bytes=32 * 1024))
    """

    keep_alive_timeout: float = limits.KEEP_ALIVE_TIMEOUT
    head_timeout: float = limits.REQUEST_HEAD_TIMEOUT
    tls_handshake_timeout: float = limits.TLS_HANDSHAKE_TIMEOUT
    max_header_bytes: int = limits.MAX_HEADER_BYTES
    backlog: int = limits.BACKLOG
    access_log: bool = False
    h11_only: bool = False

    def __post_init__(self) -> None:
        for name in ("keep_alive_timeout", "head_timeout", "tls_handshake_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        for name in ("max_header_bytes", "backlog"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
