"""The access log: one line per request to the ``framework.access`` logger.

A line through ``logging`` costs about 15 µs (a ``LogRecord``, a formatted time, a write and a
flush), a tenth of a small request's whole cost. When the logger's only handler is an
``AccessLogHandler`` (what ``framework serve`` installs), the server formats the line itself
and the handler writes the lines of one turn of the event loop together: about 2 µs a line,
the same text. Any other logging setup gets ordinary ``LogRecord``\\ s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import IO

from .limits import ACCESS_LOG_TARGET_CHARS

__all__ = ["AccessLogHandler", "install", "log_rejected", "log_request", "safe_target"]

access_log = logging.getLogger("framework.access")

#: The format ``framework serve`` gives every log line; the fast path reproduces it.
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class AccessLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes once per turn of the running event loop, not per line.

    Lines are kept until the loop has run its ready callbacks, so a burst of requests costs
    one write; with no running loop (a record logged from a thread) it writes at once.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.line_formatter = logging.Formatter(LINE_FORMAT)
        self.setFormatter(self.line_formatter)
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._scheduled = False
        self._second = -1
        self._second_text = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.add(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def add(self, line: str) -> None:
        """Queue a complete line (with its newline) for the next write."""
        with self._pending_lock:
            self._pending.append(line)
            if self._scheduled:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            self._scheduled = loop is not None
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._pending_lock:
            self._scheduled = False
            lines, self._pending = self._pending, []
        if lines:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write("".join(lines))
        super().flush()

    def asctime(self, now: float) -> str:
        """``now`` as ``logging.Formatter`` writes ``%(asctime)s``, formatted once a second."""
        second = int(now)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        return f"{self._second_text},{int((now - second) * 1000):03d}"


def _fast_handler() -> AccessLogHandler | None:
    handlers = access_log.handlers
    if (
        len(handlers) == 1
        and type(handlers[0]) is AccessLogHandler
        and not access_log.propagate
        and not access_log.filters
        and handlers[0].level <= logging.INFO
        and not handlers[0].filters
        and handlers[0].formatter is handlers[0].line_formatter
    ):
        return handlers[0]
    return None


# What a request target may hold that must not reach a log line as it is: control bytes
# (a forged line, a terminal escape), the quote that ends the field, the escape itself.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f-\x9f"\\]')


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def safe_target(target: str) -> str:
    """``target`` as a log line carries it: control characters and quotes escaped (``\\x0a``),
    and cut after ``ACCESS_LOG_TARGET_CHARS`` with a marker naming what was left out."""
    if len(target) > ACCESS_LOG_TARGET_CHARS:
        left = len(target) - ACCESS_LOG_TARGET_CHARS
        target = target[:ACCESS_LOG_TARGET_CHARS]
        return _UNSAFE.sub(_escape, target) + f"...[{left} more]"
    return _UNSAFE.sub(_escape, target)


def log_request(
    client: tuple[str, int] | None, method: str, target: str, http_version: str, status: int
) -> None:
    """Log one answered request: ``127.0.0.1 - "GET /path HTTP/1.1" 200``.

    The target is escaped and capped (``safe_target``): a peer cannot forge or flood lines.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    if len(target) > ACCESS_LOG_TARGET_CHARS or _UNSAFE.search(target):
        target = safe_target(target)
    host = client[0] if client else "-"
    handler = _fast_handler()
    if handler is None:
        access_log.info('%s - "%s %s HTTP/%s" %d', host, method, target, http_version, status)
        return
    handler.add(
        f"{handler.asctime(time.time())} INFO framework.access: "
        f'{host} - "{method} {target} HTTP/{http_version}" {status}\n'
    )


def log_rejected(client: tuple[str, int] | None, status: int) -> None:
    """Log input refused before it became a request: ``127.0.0.1 - "-" 400``.

    The request line is not repeated: it may be missing, huge or hostile (nginx writes
    ``"-"`` too when it has none).
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    host = client[0] if client else "-"
    handler = _fast_handler()
    if handler is None:
        access_log.info('%s - "-" %d', host, status)
        return
    handler.add(f'{handler.asctime(time.time())} INFO framework.access: {host} - "-" {status}\n')


def install(stream: IO[str]) -> AccessLogHandler:
    """Send access lines to ``stream`` through an ``AccessLogHandler`` (what ``serve`` does).

    The lines still follow the ``framework`` logger's level: at ``warning`` there are none.
    """
    handler = AccessLogHandler(stream)
    access_log.handlers[:] = [handler]
    access_log.propagate = False
    return handler
