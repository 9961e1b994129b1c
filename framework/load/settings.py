"""What a load run is: its settings, its target (URL, TLS context, request bytes) and its counts.

``Settings`` is everything the command line sets, picklable for ``--processes``; ``Target`` is
worked out from it once per process; ``Stats`` is what one process measured, including the
first message of each kind of error so that a run that fails says why.
"""

from __future__ import annotations

import ssl
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..http11 import Prepared, Request, prepare
from ..tls import client_context
from .histogram import Histogram

__all__ = ["ERROR_KINDS", "Settings", "Stats", "Target"]

#: Every kind of error a run counts; each failed request is counted under exactly one.
#: connect: TCP connect failed. tls: the handshake failed (or the peer hung up during it).
#: timeout: no complete answer within --timeout. reset: the server closed or reset the
#: connection before the answer was complete. protocol: the answer was not valid HTTP/1.1.
#: status: an answer with status >= 500, counted only with --fail-status.
ERROR_KINDS = ("connect", "tls", "timeout", "reset", "protocol", "status")

_perf_ns = time.perf_counter_ns


@dataclass
class Settings:
    """What to run: everything the command line sets, in one picklable object."""

    url: str
    connections: int = 64
    duration: float | None = 10.0
    requests: int | None = None
    warmup: float = 1.0
    rate: float | None = None
    new_connection: bool = False
    method: str = "GET"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    timeout: float = 10.0
    fail_status: bool = False
    processes: int = 1
    loop: str = "uvloop"

    @property
    def mode(self) -> str:
        """``"closed-loop"`` or ``"open-loop"``."""
        return "open-loop" if self.rate else "closed-loop"

    def to_json(self) -> dict[str, Any]:
        """The settings for a report (the body by its size only)."""
        data = asdict(self)
        data["body_bytes"] = len(data.pop("body"))
        data["headers"] = [list(h) for h in self.headers]
        data["mode"] = self.mode
        return data

    def share(self, index: int, parts: int) -> Settings:
        """Process ``index``'s part of the run when it is split over ``parts`` processes."""

        def split(total: int) -> int:
            return total // parts + (1 if index < total % parts else 0)

        copy = Settings(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        copy.connections = split(self.connections)
        if self.requests is not None:
            copy.requests = split(self.requests)
        if self.rate:
            copy.rate = self.rate * copy.connections / self.connections
        copy.processes = 1
        return copy


@dataclass(frozen=True)
class Target:
    """Where requests go and the bytes each one is, worked out once per process."""

    host: str
    port: int
    is_tls: bool
    server_hostname: str | None
    request_bytes: bytes
    request: Prepared
    ssl_context: ssl.SSLContext | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Target:
        """Parse the URL, build the TLS context and encode the request.

        Raises:
            ValueError: the URL is not ``http(s)://host[:port]/path``.
        """
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"URL must look like https://host:port/path, not {settings.url!r}")
        is_tls = parts.scheme == "https"
        port = parts.port or (443 if is_tls else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if is_tls else 80
        host_header = parts.hostname if port == default_port else f"{parts.hostname}:{port}"
        if ":" in parts.hostname:  # an IPv6 literal
            host_header = f"[{parts.hostname}]" + ("" if port == default_port else f":{port}")
        headers = [("host", host_header), ("user-agent", "framework-load")]
        given = {name.lower() for name, _ in settings.headers}
        headers = [h for h in headers if h[0] not in given] + list(settings.headers)
        if settings.body or settings.method in ("POST", "PUT", "PATCH"):
            if "content-length" not in given and "transfer-encoding" not in given:
                headers.append(("content-length", str(len(settings.body))))
        if settings.new_connection and "connection" not in given:
            headers.append(("connection", "close"))
        head = Request(
            settings.method.encode("ascii"),
            target.encode("ascii"),
            [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        )
        # Encoded once: h11 checks the framing, and every request of the run is these bytes.
        request = prepare(head, settings.body)
        ctx = None
        if is_tls:
            ctx = client_context(settings.ca, cert=settings.cert, key=settings.key)
        return cls(
            host=parts.hostname,
            port=port,
            is_tls=is_tls,
            server_hostname=parts.hostname if is_tls else None,
            request_bytes=request.data,
            request=request,
            ssl_context=ctx,
        )


class Stats:
    """What one process measured: latencies, counts, errors by kind, status codes, bytes."""

    __slots__ = (
        "histogram",
        "ok",
        "errors",
        "statuses",
        "bytes_in",
        "bytes_out",
        "unfinished",
        "connects",
        "started",
        "ended",
        "cpu_started",
        "cpu_ended",
        "unsent",
        "first_errors",
        "stopped",
    )

    def __init__(self) -> None:
        self.histogram = Histogram()
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.statuses: dict[int, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.unfinished = 0
        self.unsent = 0  # open loop: requests that fell due but were never sent
        self.connects = 0
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.cpu_started = time.process_time()
        self.cpu_ended: float | None = None
        # kind -> the first message of that kind, warm-up included (what the user reads)
        self.first_errors: dict[str, str] = {}
        # Why the run stopped before its end, when it did (``Engine`` fills it in).
        self.stopped: dict[str, Any] | None = None

    @property
    def elapsed(self) -> float:
        """Seconds measured so far (or in all, once ended)."""
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    @property
    def cpu_seconds(self) -> float:
        """CPU time this process used while measuring (its own load-generating cost)."""
        return (
            self.cpu_ended if self.cpu_ended is not None else time.process_time()
        ) - self.cpu_started

    def end(self) -> None:
        """Stop the clocks: measuring is over."""
        self.ended = time.perf_counter()
        self.cpu_ended = time.process_time()

    @property
    def error_count(self) -> int:
        """All errors of every kind."""
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        """Counts and the histogram, mergeable with ``merge_json``."""
        return {
            "elapsed": self.elapsed,
            "ok": self.ok,
            "errors": {k: self.errors.get(k, 0) for k in ERROR_KINDS},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "unfinished": self.unfinished,
            "unsent": self.unsent,
            "connects": self.connects,
            "cpu_seconds": self.cpu_seconds,
            "histogram": self.histogram.to_json(),
            "first_errors": dict(self.first_errors),
            "stopped": self.stopped,
        }
