"""The access log: one line per request to the ``framework.access`` logger.

A line reads ``127.0.0.1 - "GET /path HTTP/1.1" 200 139 0.215ms TLSv1.3 localhost -``: the
client, the request line, the status, the bytes of the response as written (head and body,
before TLS), how long the request took from its head to its last byte written, the TLS version,
the SNI name and the client certificate's subject (``-`` for each one missing). The ``json``
format writes the same fields as one JSON object a line, for log pipelines. No request header
is ever logged (so no ``Authorization`` or ``Cookie`` value), and what the peer chose (the
target, the SNI name, the certificate's subject) is escaped and capped.

A line through ``logging`` costs about 15 µs (a ``LogRecord``, a formatted time, a write and a
flush), a tenth of a small request's whole cost. When the logger's only handler is an
``AccessLogHandler`` (what ``framework serve`` installs), the server formats the line itself
and the handler writes the lines of one turn of the event loop together: about 2 µs a line,
the same text. Any other logging setup gets ordinary ``LogRecord``\\ s, with the fields also
as the record's ``access`` attribute (a dict) for formatters of its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from json.encoder import encode_basestring_ascii as _encode_ascii  # what json.dumps uses
from typing import IO, Any, Literal, TypeAlias

from .limits import ACCESS_LOG_FIELD_CHARS, ACCESS_LOG_TARGET_CHARS

__all__ = [
    "AccessLogHandler",
    "ConnectionFields",
    "LogFormat",
    "install",
    "log_rejected",
    "log_request",
    "safe_target",
]

access_log = logging.getLogger("framework.access")

#: ``"text"``: the line above; ``"json"``: one JSON object a line.
LogFormat = Literal["text", "json"]

#: The format ``framework serve`` gives every log line; the fast path reproduces it.
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The format of a JSON access log: the object alone, which carries its own time.
JSON_FORMAT = "%(message)s"


class AccessLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes once per turn of the running event loop, not per line.

    Lines are kept until the loop has run its ready callbacks, so a burst of requests costs
    one write; with no running loop (a record logged from a thread) it writes at once.
    ``log_format="json"`` writes each message alone (a JSON object), without time or level.
    """

    def __init__(self, stream: IO[str] | None = None, log_format: LogFormat = "text") -> None:
        super().__init__(stream)
        self.is_json = log_format == "json"
        self.line_formatter = logging.Formatter(JSON_FORMAT if self.is_json else LINE_FORMAT)
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

    def prefix(self, now: float) -> str:
        """What ``LINE_FORMAT`` puts before an access message (nothing for JSON)."""
        return "" if self.is_json else f"{self.asctime(now)} INFO framework.access: "


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
# In an unquoted field (the SNI name) a space would also shift every field after it.
_UNSAFE_BARE = re.compile(r'[\x00-\x20\x7f-\x9f"\\]')


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


def _capped(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit] + f"...[{len(value) - limit} more]"


def _quote(value: str | None) -> str:
    """``value`` as a JSON string, ASCII only (every control and non-ASCII character a
    ``\\u`` escape, so an object is one line whatever the peer sent), or ``null``."""
    return "null" if value is None else _encode_ascii(value)


class ConnectionFields:
    """What a connection's TLS gives each of its access-log lines, made once per connection.

    Args:
        version: the TLS version (``"TLSv1.3"``), or ``None`` on plain HTTP.
        server_name: the name the client asked for by SNI, if any.
        peer_subject: the client certificate's subject (RFC 4514, ``"CN=alice"``), if any.
    """

    __slots__ = ("version", "server_name", "peer_subject", "text", "json")

    def __init__(
        self, version: str | None, server_name: str | None, peer_subject: str | None
    ) -> None:
        # The SNI name and the subject come from the peer: capped, and escaped in the line.
        self.version = version
        self.server_name = None if server_name is None else _capped(server_name, 255)
        self.peer_subject = (
            None if peer_subject is None else _capped(peer_subject, ACCESS_LOG_FIELD_CHARS)
        )
        name = "-" if self.server_name is None else _UNSAFE_BARE.sub(_escape, self.server_name)
        subject = (
            "-"
            if self.peer_subject is None
            else '"' + _UNSAFE.sub(_escape, self.peer_subject) + '"'
        )
        self.text = f"{version or '-'} {name} {subject}"
        self.json = (
            f'"tls_version":{_quote(version)},"sni":{_quote(self.server_name)},'
            f'"client_cert":{_quote(self.peer_subject)}'
        )


#: The fields of a connection without TLS.
PLAIN = ConnectionFields(None, None, None)

#: The arguments of ``_fields`` and ``_json_line``.
_FieldArgs: TypeAlias = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    int,
    int | None,
    float | None,
    ConnectionFields,
]


def _json_line(
    host: str | None,
    method: str | None,
    target: str | None,
    http_version: str | None,
    status: int,
    sent: int | None,
    duration: float | None,
    connection: ConnectionFields,
) -> str:
    """The JSON object of ``_fields``, written directly: a third of ``json.dumps``'s cost."""
    if target is not None and len(target) > ACCESS_LOG_TARGET_CHARS:
        target = _capped(target, ACCESS_LOG_TARGET_CHARS)
    length = "null" if sent is None else str(sent)
    took = "null" if duration is None else f"{duration * 1000:.3f}"
    return (
        f'{{"time":"{_iso_time(time.time())}","client":{_quote(host)},"method":{_quote(method)},'
        f'"target":{_quote(target)},"http_version":{_quote(http_version)},"status":{status},'
        f'"bytes":{length},"duration_ms":{took},{connection.json}}}'
    )


def _fields(
    host: str | None,
    method: str | None,
    target: str | None,
    http_version: str | None,
    status: int,
    sent: int | None,
    duration: float | None,
    connection: ConnectionFields,
) -> dict[str, Any]:
    if target is not None and len(target) > ACCESS_LOG_TARGET_CHARS:
        target = _capped(target, ACCESS_LOG_TARGET_CHARS)
    return {
        "time": _iso_time(time.time()),
        "client": host,
        "method": method,
        "target": target,
        "http_version": http_version,
        "status": status,
        "bytes": sent,
        "duration_ms": None if duration is None else round(duration * 1000, 3),
        "tls_version": connection.version,
        "sni": connection.server_name,
        "client_cert": connection.peer_subject,
    }


_iso_second = [-1, ""]


def _iso_time(now: float) -> str:
    """``now`` in ISO 8601 UTC to the millisecond (``2026-12-03T17:01:15.123Z``)."""
    second = int(now)
    if second != _iso_second[0]:
        _iso_second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_iso_second[1]}.{int((now - second) * 1000):03d}Z"


def _tail(
    status: int, sent: int | None, duration: float | None, connection: ConnectionFields
) -> str:
    length = "-" if sent is None else str(sent)
    took = "-" if duration is None else f"{duration * 1000:.3f}ms"
    return f"{status} {length} {took} {connection.text}"


def log_request(
    client: tuple[str, int] | None,
    method: str,
    target: str,
    http_version: str,
    status: int,
    sent: int | None = None,
    duration: float | None = None,
    connection: ConnectionFields = PLAIN,
    log_format: LogFormat = "text",
) -> None:
    """Log one answered request: ``127.0.0.1 - "GET /path HTTP/1.1" 200 139 0.215ms ...``.

    ``sent`` is the bytes of the response written, ``duration`` the seconds from the request
    head to the response's last byte. The target is escaped and capped (``safe_target``): a
    peer cannot forge or flood lines.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    host = client[0] if client else "-"
    handler = _fast_handler()
    if log_format == "json":
        args = (
            client[0] if client else None,
            method,
            target,
            http_version,
            status,
            sent,
            duration,
            connection,
        )
        _emit_json(handler, args)
        return
    if len(target) > ACCESS_LOG_TARGET_CHARS or _UNSAFE.search(target):
        target = safe_target(target)
    tail = _tail(status, sent, duration, connection)
    if handler is None:
        access_log.info(
            '%s - "%s %s HTTP/%s" %s',
            host,
            method,
            target,
            http_version,
            tail,
            extra={
                "access": _fields(
                    client[0] if client else None,
                    method,
                    target,
                    http_version,
                    status,
                    sent,
                    duration,
                    connection,
                )
            },
        )
        return
    handler.add(
        f'{handler.prefix(time.time())}{host} - "{method} {target} HTTP/{http_version}" {tail}\n'
    )


def _emit_json(handler: AccessLogHandler | None, args: _FieldArgs) -> None:
    text = _json_line(*args)
    if handler is None:
        access_log.info("%s", text, extra={"access": _fields(*args)})
    else:
        handler.add(handler.prefix(time.time()) + text + "\n")


def log_rejected(
    client: tuple[str, int] | None,
    status: int,
    sent: int | None = None,
    connection: ConnectionFields = PLAIN,
    log_format: LogFormat = "text",
) -> None:
    """Log input refused before it became a request: ``127.0.0.1 - "-" 400 ...``.

    The request line is not repeated: it may be missing, huge or hostile (nginx writes
    ``"-"`` too when it has none).
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    host = client[0] if client else "-"
    handler = _fast_handler()
    if log_format == "json":
        _emit_json(
            handler,
            (client[0] if client else None, None, None, None, status, sent, None, connection),
        )
        return
    tail = _tail(status, sent, None, connection)
    if handler is None:
        fields = _fields(
            client[0] if client else None, None, None, None, status, sent, None, connection
        )
        access_log.info('%s - "-" %s', host, tail, extra={"access": fields})
        return
    handler.add(f'{handler.prefix(time.time())}{host} - "-" {tail}\n')


def install(stream: IO[str], log_format: LogFormat = "text") -> AccessLogHandler:
    """Send access lines to ``stream`` through an ``AccessLogHandler`` (what ``serve`` does).

    The lines still follow the ``framework`` logger's level: at ``warning`` there are none.
    """
    handler = AccessLogHandler(stream, log_format)
    access_log.handlers[:] = [handler]
    access_log.propagate = False
    return handler
