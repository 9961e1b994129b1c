"""Hand-written HTTP/1.1 framing: the plain messages the driver frames without h11.

h11 defines HTTP/1.1 here. This module holds only what tests prove h11 would produce byte for
byte: the head of a whole in-memory response with ``Content-Length`` framing, to a complete
HTTP/1.1 request. The driver decides when a message qualifies and hands every other one to h11;
nothing outside the driver imports this module.
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = ["reason_phrase", "status_line", "whole_response_head"]

# RFC 9110 token: what a header name may be made of.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# Header names already checked against _TOKEN; responses reuse a handful of names, so a set
# lookup replaces the regex after the first time. Bounded so hostile input cannot grow it.
_known_names: set[bytes] = set()
_KNOWN_NAMES_MAX = 1024
_status_lines: dict[int, bytes] = {}


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status`` (``"Not Found"``), or ``""`` for an unknown one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 404 Not Found\\r\\n"``, made once per status."""
    line = _status_lines.get(status)
    if line is None:
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode(
            "ascii"
        )
    return line


def _names_are_tokens(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:
        if name not in _known_names:
            if not _TOKEN.fullmatch(name):
                return False
            if len(_known_names) < _KNOWN_NAMES_MAX:
                _known_names.add(name)
    return True


def whole_response_head(
    status: int, headers: list[tuple[bytes, bytes]], length: int, keep_alive: bool
) -> bytes | None:
    """The head of a response with a ``length``-byte body, or ``None`` when h11 must frame it.

    ``Content-Length`` is added, and ``Connection: close`` unless ``keep_alive``. The caller
    guarantees the framing rules (a final status other than 204/304, no ``Content-Length``,
    ``Transfer-Encoding`` or ``Connection`` among ``headers``); this checks what h11 would
    refuse in the headers themselves: a name that is not a token, CR, LF or NUL in a value.
    """
    parts = [status_line(status)]
    for name, value in headers:
        parts.append(name + b": " + value + b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"content-length: %d\r\n\r\n" % length)
    head = b"".join(parts)
    # The status line, one per header, content-length and the blank line (and the connection
    # header): any other CR or LF came from a header and would split it, so h11 must refuse it.
    lines = len(headers) + 3 + (not keep_alive)
    if (
        head.count(b"\n") == lines
        and head.count(b"\r") == lines
        and b"\0" not in head
        and _names_are_tokens(headers)
    ):
        return head
    return None
