"""The HTTP/1.1 events both roles see: small slotted values of our own.

The driver turns what it parses into these and turns these into bytes, so no module above the
protocol layer names h11's classes. Header lists are ``(name, value)`` pairs of bytes; on the
events the driver gives, names are lowercase, as RFC 9110 compares them. Events are values:
treat them as read-only once made.
"""

from __future__ import annotations

__all__ = [
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "HeaderList",
    "InformationalResponse",
    "Request",
    "Response",
]

HeaderList = list[tuple[bytes, bytes]]


class Request:
    """A request head: method, target (as sent), headers and HTTP version (``b"1.1"``)."""

    # _wire: the driver's checked form of this head, kept by http11.check() (see there).
    __slots__ = ("method", "target", "headers", "http_version", "_wire")

    def __init__(
        self, method: bytes, target: bytes, headers: HeaderList, http_version: bytes = b"1.1"
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self._wire: object = None

    def __eq__(self, other: object) -> bool:
        return type(other) is Request and (
            self.method,
            self.target,
            self.headers,
            self.http_version,
        ) == (other.method, other.target, other.headers, other.http_version)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.headers!r}, {self.http_version!r})"


class Response:
    """A final response head (status 200 and up): status, headers, reason phrase, version."""

    __slots__ = ("status_code", "headers", "reason", "http_version", "_wire")

    def __init__(
        self,
        status_code: int,
        headers: HeaderList,
        reason: bytes = b"",
        http_version: bytes = b"1.1",
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = reason
        self.http_version = http_version
        self._wire: object = None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (
            self.status_code,
            self.headers,
            self.reason,
            self.http_version,
        ) == (other.status_code, other.headers, other.reason, other.http_version)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.status_code}, {self.headers!r}, {self.reason!r}, "
            f"{self.http_version!r})"
        )


class InformationalResponse(Response):
    """A 1xx response head (``100 Continue``, ``101 Switching Protocols``, ``103``)."""

    __slots__ = ()


class Data:
    """A piece of a message body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is Data and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Data(<{len(self.data)} bytes>)"


class EndOfMessage:
    """The end of a message body, with the trailer fields of a chunked body (usually none)."""

    __slots__ = ("headers",)

    def __init__(self, headers: HeaderList | None = None) -> None:
        self.headers: HeaderList = headers if headers is not None else []

    def __eq__(self, other: object) -> bool:
        return type(other) is EndOfMessage and self.headers == other.headers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EndOfMessage({self.headers!r})" if self.headers else "EndOfMessage()"


class ConnectionClosed:
    """The peer closed its side of the connection (end of file) between messages."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is ConnectionClosed

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "ConnectionClosed()"


Event = Request | InformationalResponse | Response | Data | EndOfMessage | ConnectionClosed
