"""The plain-message codec: the HTTP/1.1 heads the driver reads and writes without h11.

h11 defines HTTP/1.1 for this framework. Most messages on a busy connection are nevertheless
the same few shapes, and running each through h11's reader, writer and state machine costs
several times more than handling the head itself. The pure functions here do so directly, but
only within a narrow subset, the *plain* messages, for which tests/test_http11_plain.py and
tests/test_http11_paths.py check differentially that h11 reports or writes exactly the same.
Anything outside the subset, or anything in doubt, is refused with ``None``, and the driver
hands the bytes to h11, which accepts or rejects them as it always does. Refusing is always
safe; reading something h11 would read differently never is. Nothing but the driver imports
this module.

Reading. A plain request head is:

- the request line ``METHOD SP TARGET SP HTTP/1.1``: the method a token other than CONNECT,
  the target visible ASCII in origin form (starting with ``/``) whose path holds neither a
  dot-segment nor a percent-escape (``checks.check_request`` judges those, and ``*`` and the
  absolute form);
- header lines ``name ":" OWS value OWS``: the name a token, the value made of HTAB, SP,
  VCHAR and obs-text (0x80-0xFF), reported with the OWS around it stripped as h11 strips it;
- exactly one Host, a valid ``host[:port]`` (``checks.HOST``); Content-Length absent or once
  with the value ``0``; no Transfer-Encoding,
  Expect or Upgrade: so no body, no 100-continue and no protocol switch follow;
- CRLF line ends only and no other control byte anywhere (no NUL, DEL, bare CR or LF), no
  obs-fold, no leading empty line, and at most ``MAX_HEAD`` bytes.

A plain response head is the status line ``HTTP/1.1 SP 3DIGIT [SP reason]`` with a status from
200 to 599 other than 204 and 304, the same header lines, exactly one Content-Length of at most
18 ASCII digits, and no Transfer-Encoding. Whether a body follows at all depends on the request
(a response to HEAD or to a CONNECT has none), which the driver knows and this module does not.
Keep-alive (``Connection``) is not judged here either: the driver reads it from the headers.

Writing. The head of a whole in-memory response with ``Content-Length`` framing, to a complete
HTTP/1.1 request, byte for byte as h11 writes it.
"""

from __future__ import annotations

import re

from ..messages import reason_phrase
from .checks import HOST

__all__ = [
    "MAX_HEAD",
    "keep_alive",
    "parse_request_head",
    "parse_response_head",
    "status_line",
    "whole_response_head",
]

# --- reading -------------------------------------------------------------------------------

#: The longest head read here, in bytes. Longer ones go to h11: this is its default limit on a
#: head (16 KiB, the blank line included). The caller still enforces its own limit.
MAX_HEAD = 16 * 1024 - 4

# RFC 9110 token (1*tchar), as h11/_abnf.py defines it for methods and header names.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")

# Every control byte but HTAB: 0x00-0x08 and 0x0A-0x1F (CR and LF among them) and DEL. A plain
# head holds none of them except the CR LF pairs that end its lines, so deleting them all must
# remove exactly two bytes per line end: one C-level pass checks the whole head.
_CONTROLS_CR_LF = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])

# Header names already checked against _TOKEN, each mapped to its lowercase form, and methods
# already checked. Peers reuse a handful of names, so a dict lookup replaces the regex after the
# first time; bounded so that hostile input cannot grow them without limit. The names that need
# a closer look (_SPECIAL) are kept apart, so that the common lookup, a hit in _names, needs no
# further test.
_CACHE_MAX = 1024
_names: dict[bytes, bytes] = {}
_special_names: dict[bytes, bytes] = {}
_methods: set[bytes] = set()
_hosts: set[bytes] = set()
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"})

# More digits than this in a response's Content-Length go to h11 (which allows 20): 18 digits
# always fit in 63 bits, and no real body comes near that.
_MAX_LENGTH_DIGITS = 18


def _lines(head: bytes) -> list[bytes] | None:
    """``head`` split at its CRLFs, or None if it is too long or holds a forbidden byte."""
    if len(head) > MAX_HEAD:
        return None
    lines = head.split(b"\r\n")
    # Anything deleted beyond the CRLFs split at is a control byte (NUL, VT, FF, DEL...) or a
    # CR or LF on its own: h11 refuses some, reads a bare LF as a line end and lets other
    # controls into values, and none of them belong in a plain head.
    if len(head.translate(None, _CONTROLS_CR_LF)) != len(head) - 2 * (len(lines) - 1):
        return None
    return lines


def _name(name: bytes) -> bytes | None:
    """The lowercase form of a header name not yet in the caches, or None if not a token.

    Not a token covers an empty name, whitespace before the colon, and obs-fold (a line
    starting with SP or HTAB, which h11 would join to the line before).
    """
    if _TOKEN.fullmatch(name) is None:
        return None
    lower = name.lower()
    cache = _special_names if lower in _SPECIAL else _names
    if len(cache) < _CACHE_MAX:
        cache[name] = lower
    return lower


def parse_request_head(head: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None:
    """Read a plain request head: ``(method, target, headers)``, or None if it is not plain.

    ``head`` is the request's bytes up to, not including, the CRLF CRLF that ends the head.
    The result is what h11 reports for the same bytes: ``Request.method``, ``.target`` and the
    ``(lowercase name, value)`` pairs of ``.headers``, with ``http_version`` 1.1 and no body
    (``EndOfMessage`` next). None means "ask h11", not "invalid".
    """
    lines = _lines(head)
    if lines is None:
        return None
    lines_iter = iter(lines)
    parts = next(lines_iter).split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if version != b"HTTP/1.1":
        return None
    if method not in _methods:
        if _TOKEN.fullmatch(method) is None:
            return None
        if len(_methods) < _CACHE_MAX:
            _methods.add(method)
    # CONNECT asks h11 to switch protocols once the request is done. h11 compares the method
    # case-sensitively, as RFC 9110 does, so only this spelling is special.
    if method == b"CONNECT":
        return None
    # h11 wants 1*VCHAR. SP cannot be here (split at), and _lines let nothing below SP through
    # but HTAB, nor DEL: so ASCII without HTAB is VCHAR.
    if not target or target[0] != 0x2F or not target.isascii() or b"\t" in target:
        return None
    if (b"%" in target or b"/." in target) and (
        b"%" in target.partition(b"?")[0] or b"/." in target.partition(b"?")[0]
    ):
        return None

    # The header loop is written out here and in parse_response_head rather than shared: a
    # call and the tuples to return its results cost a measurable part of the whole.
    headers: list[tuple[bytes, bytes]] = []
    hosts = 0
    lengths = 0
    names = _names
    for line in lines_iter:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        lower = names.get(name)
        if lower is None:
            lower = _special_names.get(name) or _name(name)
            if lower is None:
                return None
            if lower in _SPECIAL:
                # h11's OWS is SP and HTAB only: say so, though the VT and FF that strip()
                # would also take were refused with the other control bytes.
                value = value.strip(b" \t")
                if lower == b"host":
                    hosts += 1
                    if value not in _hosts:
                        if HOST.fullmatch(value) is None:
                            return None
                        if len(_hosts) < _CACHE_MAX:
                            _hosts.add(value)
                elif lower == b"content-length":
                    # h11 would merge repeats and read "0, 0" or "00" as 0: only the one
                    # spelling is reported unchanged.
                    lengths += 1
                    if value != b"0":
                        return None
                else:
                    # Transfer-Encoding (a body, and h11 lowercases its value), Expect
                    # (100-continue) or Upgrade (a protocol switch).
                    return None
                headers.append((lower, value))
                continue
        headers.append((lower, value.strip(b" \t")))
    # h11 refuses a 1.1 request without Host and any request with two.
    if hosts != 1 or lengths > 1:
        return None
    return method, target, headers


def parse_response_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], int] | None:
    """Read a plain response head: ``(status, reason, headers, content_length)``, or None.

    ``head`` is as for ``parse_request_head``. ``status``, ``reason`` and ``headers`` are what
    h11's ``Response`` event reports for the same bytes; ``content_length`` is the length of the
    body h11 then reads, given a request that was neither HEAD nor CONNECT.
    """
    lines = _lines(head)
    if lines is None:
        return None
    lines_iter = iter(lines)
    first = next(lines_iter)
    # h11 reads "HTTP/1.1 200" (no SP, no reason) as an empty reason, and keeps the reason
    # after the one SP as sent, surrounding spaces included.
    if len(first) < 12 or first[:9] != b"HTTP/1.1 " or (len(first) > 12 and first[12] != 0x20):
        return None
    code = first[9:12]
    if not code.isdigit():  # ASCII digits only, for bytes
        return None
    status = int(code)
    # 1xx are interim responses with no body; 204 and 304 never have one whatever they say;
    # h11 takes 600-999 too, but RFC 9110 defines none of them.
    if status < 200 or status > 599 or status == 204 or status == 304:
        return None

    headers: list[tuple[bytes, bytes]] = []
    length = b""
    names = _names
    for line in lines_iter:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        lower = names.get(name)
        if lower is None:
            lower = _special_names.get(name) or _name(name)
            if lower is None:
                return None
            if lower == b"content-length":
                # Repeats go to h11, which would merge "5" and "5" into one header.
                if length:
                    return None
                value = length = value.strip(b" \t")
                # Digits only: no sign, inner space or comma list ("5, 5"), which h11 reads
                # its own way. Empty is no digits: bytes.isdigit() is False for b"".
                if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                    return None
                headers.append((lower, value))
                continue
            if lower == b"transfer-encoding":
                return None
            # Host, Expect and Upgrade mean nothing special in a response to h11's client:
            # it switches protocols only on a 101 or a 2xx to CONNECT, both refused here.
        headers.append((lower, value.strip(b" \t")))
    # Without a Content-Length h11 reads the body up to the connection's close.
    if not length:
        return None
    return status, first[13:], headers, int(length)


def keep_alive(headers: list[tuple[bytes, bytes]]) -> bool | None:
    """What the ``Connection`` headers say: keep alive (True), close (False), or None when
    they say anything else (the plain path then leaves the message to h11)."""
    alive = True
    for name, value in headers:
        if name == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token == b"close":
                    alive = False
                elif token != b"keep-alive":
                    return None
    return alive


# --- writing -------------------------------------------------------------------------------

_status_lines: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 404 Not Found\\r\\n"``, made once per status."""
    line = _status_lines.get(status)
    if line is None:
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode(
            "ascii"
        )
    return line


def _names_are_tokens(headers: list[tuple[bytes, bytes]]) -> bool:
    # The reader's cache of names known to be tokens serves the writer too.
    for name, _ in headers:
        if name not in _names and name not in _special_names and _name(name) is None:
            return False
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
