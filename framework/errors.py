"""The exception hierarchy: one base, ``FrameworkError``, and one branch per layer.

Foreign exceptions (``h11``, ``ssl``, ``OSError``) are translated where they enter a public
call and chained with ``from exc``; nothing here knows about sockets or TLS itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "CertificateError",
    "CertificateVerifyError",
    "ClientDisconnect",
    "ClientError",
    "ConnectError",
    "ConnectTimeout",
    "DecodingError",
    "FrameworkError",
    "HTTPError",
    "HTTPStatusError",
    "LocalProtocolError",
    "PKIError",
    "PolicyError",
    "PoolTimeout",
    "ProxyError",
    "ProtocolError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "ServerDisconnectedError",
    "SigningRequestError",
    "TLSError",
    "TimeoutException",
    "TooManyRedirects",
    "WriteError",
    "WriteTimeout",
]


class FrameworkError(Exception):
    """Base of every error this package raises on purpose."""


class HTTPError(FrameworkError):
    """Raised by a handler to answer with ``status`` (and an optional detail and headers).

    Args:
        status: the HTTP status code to answer with, 400-599 usually.
        detail: the body of the response; the status phrase when omitted.
        headers: extra response headers, for example ``{"WWW-Authenticate": "Bearer"}``.

    Example::

        raise HTTPError(404, "no such user")
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if not 100 <= status <= 599:
            raise ValueError(f"HTTPError status must be 100-599, not {status!r}")
        self.status = status
        self.detail = detail
        self.headers = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        super().__init__(status, detail)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}" if self.detail else str(self.status)


class ProtocolError(FrameworkError):
    """HTTP/1.1 was broken by one side; ``status_hint`` is the status to answer with."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We tried to send something HTTP/1.1 forbids (a bug in the caller or in us)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something HTTP/1.1 forbids (400, 431, 501, ...)."""


class ClientDisconnect(FrameworkError, ConnectionResetError):
    """The request body cannot be read whole: the client went away, or the server gave up on it.

    Raised by ``await request.body()`` and ``request.stream()`` when the connection was lost,
    the body was malformed, too slow (408) or too large for the server's streaming limit
    (413). Nothing can be answered any more; ``App`` ends the handler quietly (one line at
    DEBUG, no 500 and no traceback). Also a builtin ``ConnectionResetError``.

    Attributes:
        reason: what happened, in a few words.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- client errors, by the phase in which they happen -------------------------------------


class ClientError(FrameworkError):
    """Base of the errors ``Client`` raises while making a request."""


class ConnectError(ClientError):
    """The TCP connection could not be made (refused, unreachable, name not resolved)."""


class TLSError(ConnectError):
    """The TLS handshake failed."""


class ProxyError(ConnectError):
    """The proxy refused to open a tunnel (its answer to ``CONNECT`` was not 2xx).

    Attributes:
        status: the proxy's status code (403, 407, 502, ...).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class CertificateVerifyError(TLSError):
    """The server's certificate was not trusted for this host.

    Attributes:
        reason: OpenSSL's reason, for example ``"certificate has expired"``.
        host: the host name that was checked.
        hint: one line saying how to fix it.
    """

    def __init__(self, reason: str, host: str, hint: str) -> None:
        super().__init__(f"certificate verify failed for {host}: {reason} ({hint})")
        self.reason = reason
        self.host = host
        self.hint = hint


class ReadError(ClientError):
    """Reading from the connection failed."""


class WriteError(ClientError):
    """Writing to the connection failed."""


class ServerDisconnectedError(ReadError):
    """The server closed the connection before the response was complete."""


class TimeoutException(ClientError, TimeoutError):
    """Base of the client's timeouts; also a builtin ``TimeoutError``."""


class ConnectTimeout(TimeoutException):
    """Connecting (TCP and the TLS handshake) took longer than the connect timeout."""


class ReadTimeout(TimeoutException):
    """The server sent nothing for longer than the read timeout."""


class WriteTimeout(TimeoutException):
    """The request could not be written within the write timeout."""


class PoolTimeout(TimeoutException):
    """No connection of the pool became free within the pool timeout."""


class TooManyRedirects(ClientError):
    """More redirects than ``max_redirects`` were followed."""


class DecodingError(ClientError):
    """The response body could not be decoded (bad gzip, or past the decoded-size cap)."""


class HTTPStatusError(ClientError):
    """Raised by ``Response.raise_for_status()`` for a 4xx or 5xx response."""

    def __init__(self, message: str, *, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


# --- certificates ----------------------------------------------------------------------------


class PKIError(FrameworkError):
    """Base of the certificate authority's errors."""


class CertificateError(PKIError):
    """A certificate or key is unreadable, mismatched, expired, or does not verify."""


class SigningRequestError(PKIError):
    """A certificate signing request is malformed or its signature does not verify."""


class PolicyError(PKIError):
    """The CA's policy refuses the request (a name outside it, a CA request, too many days)."""
