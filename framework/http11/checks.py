"""Checks of received messages that h11 leaves out, applied by the driver.

Pure functions over received bytes and our events: each raises ``RemoteProtocolError`` with
the status a server should answer, or returns what the driver needs to go on. Both parsing
paths share them: the plain path reads only heads that pass them all (``plain.py`` says "not
plain" for anything else), so anything odd reaches h11 and these checks.

What h11 0.16 accepts and these refuse (tests/e2e/test_hostile.py measures each case against
h11 alone and over TLS against the server):

- in any head (``check_raw_head``, on the bytes as received, since h11's parser merges an
  obs-fold and accepts bare LF): control bytes other than HTAB (DEL, NUL, ...), a CR or LF
  not part of a CRLF, obs-fold (a line starting with SP or HTAB), ``Content-Length`` more
  than once or not all digits, ``Content-Length`` together with ``Transfer-Encoding``,
  ``chunked`` more than once (RFC 9112 6.1); in a request also ``Transfer-Encoding`` whose
  last coding is not ``chunked`` (RFC 9112 6.3), several ``Host`` fields, a request line
  over its limit (414) and more header fields than allowed (431);
- in a request head (``check_request``): a version other than 1.0 and 1.1 (505: the HTTP/2
  preface ``PRI * HTTP/2.0`` among them), ``CONNECT`` (405: this is an origin server, not a
  proxy), ``*`` with any method but ``OPTIONS``, a target in none of the forms an origin
  server takes, a ``Host`` that is not ``host[:port]``, an absolute-form target whose
  authority disagrees with ``Host``, ``Transfer-Encoding`` on HTTP/1.0 (RFC 9112 6.1), and a
  path whose dot-segments climb above the root (``/a/../../etc``, also percent-encoded);
- in a chunked body (``check_chunked_buffer``): a bare LF ending a chunk-size line, where
  h11 would wait for a CRLF that never comes.
"""

from __future__ import annotations

import re

from ..errors import RemoteProtocolError
from .events import Request, Response

__all__ = [
    "HOST",
    "check_chunked_buffer",
    "check_head",
    "check_head_size",
    "check_partial_head",
    "check_raw_head",
    "check_request",
    "climbs_above_root",
    "head_end",
    "refused_head",
    "head_size",
]

# Every control byte but HTAB, CR and LF (those are checked apart): NUL, VT, FF, ESC, DEL...
_CONTROLS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])

# The end of a head as h11 finds it: a blank line made of CRLF or of a bare LF.
_HEAD_END = re.compile(rb"\n\r?\n")

#: RFC 9110 7.2 ``Host = uri-host [ ":" port ]``: an IP-literal, or a reg-name (which covers
#: IPv4 addresses) of unreserved, percent-encoded and sub-delims characters.
HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]*)(?::[0-9]*)?")

_SCHEMES = {b"http": b":80", b"https": b":443"}


def _bad(message: str, status: int = 400) -> RemoteProtocolError:
    return RemoteProtocolError(message, status)


def head_size(event: Request | Response) -> int:
    """The size of a message head on the wire (give or take optional whitespace)."""
    if type(event) is Request:
        size = len(event.method) + len(event.target) + 12  # "M T HTTP/1.1\r\n"
    else:
        size = len(event.reason) + 15  # type: ignore[union-attr]  # "HTTP/1.1 200 R\r\n"
    for name, value in event.headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
    return size + 2


def check_head_size(event: Request | Response, max_size: int) -> None:
    """Refuse a head larger than ``max_size`` bytes (431).

    h11 enforces its limit only on a head still incomplete in its buffer: a larger head
    arriving whole in one read (one batch of TLS records) would pass unchecked.

    Raises:
        RemoteProtocolError: the head is too large; status hint 431.
    """
    if head_size(event) > max_size:
        raise RemoteProtocolError(f"message head larger than the {max_size} byte limit", 431)


def head_end(buf: bytes) -> int:
    """The length of the head at the start of ``buf`` (blank line included), or -1."""
    match = _HEAD_END.search(buf)
    return -1 if match is None else match.end()


def check_partial_head(buf: bytes, max_line: int, max_count: int) -> None:
    """Refuse a request head over its limits before it is complete.

    h11 enforces only its own size limit on an incomplete head, so a head trickling in
    would otherwise be refused only once it is whole (or never, when it never is).

    Raises:
        RemoteProtocolError: no line end within ``max_line`` bytes (414), or more than
            ``max_count`` header lines and still no end of the head (431).
    """
    if len(buf) > max_line + 1 and buf.find(b"\n", 0, max_line + 2) < 0:
        raise _bad(f"request line longer than the {max_line} byte limit", 414)
    if buf.count(b"\n") > max_count + 1 and head_end(buf) < 0:
        raise _bad(f"more than {max_count} header fields", 431)


def check_raw_head(raw: bytes, is_request: bool, max_line: int, max_count: int) -> None:
    """Check a message head as received, its blank line included.

    ``max_line`` and ``max_count`` (the request line's length, the number of header fields)
    apply to requests only.

    Raises:
        RemoteProtocolError: 414 for the request line, 431 for the header count, 400 for the
            rest (see the module's docstring).
    """
    first = raw.find(b"\n")
    if is_request and first - (first > 0 and raw[first - 1] == 0x0D) > max_line:
        raise _bad(f"request line longer than the {max_line} byte limit", 414)
    if is_request and raw.count(b"\n") - 2 > max_count:
        raise _bad(f"more than {max_count} header fields", 431)
    if len(raw.translate(None, _CONTROLS)) != len(raw):
        raise _bad("control byte in the message head")
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf or raw.count(b"\r") != crlf:
        raise _bad("bare CR or LF in the message head")
    if b"\n " in raw or b"\n\t" in raw:
        raise _bad("obs-fold (a header line starting with whitespace)")
    lengths = hosts = encodings = 0
    codings: list[bytes] = []
    for line in raw.split(b"\r\n")[1:-2]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            lengths += 1
            if not value.strip(b" \t").isdigit():
                raise _bad("Content-Length is not a single number")
        elif name == b"transfer-encoding":
            encodings += 1
            codings.extend(coding.strip(b" \t").lower() for coding in value.split(b","))
        elif name == b"host":
            hosts += 1
    if lengths > 1:
        raise _bad("Content-Length more than once")
    if lengths and encodings:
        raise _bad("both Content-Length and Transfer-Encoding")
    if codings.count(b"chunked") > 1:
        raise _bad("chunked applied more than once")
    if is_request:
        if encodings and codings[-1] != b"chunked":
            raise _bad("Transfer-Encoding in a request whose last coding is not chunked")
        if hosts > 1:
            raise _bad("Host more than once")


def check_chunked_buffer(buf: bytes) -> None:
    """Check what a chunked body left unread: a partial chunk-size line or trailer section.

    h11 ends those lines at a CRLF only, so a bare LF would have it wait for ever.

    Raises:
        RemoteProtocolError: a bare LF; status hint 400.
    """
    if buf.count(b"\n") != buf.count(b"\r\n"):
        raise _bad("bare LF in the chunked framing")


def climbs_above_root(path: bytes) -> bool:
    """True when the dot-segments of ``path`` (decoded) lead above the root, as ``/a/../..``."""
    if b"%" in path:
        from urllib.parse import unquote_to_bytes

        path = unquote_to_bytes(path)
    if b"." not in path:
        return False
    depth = 0
    for segment in path.split(b"/")[1:]:
        if segment == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif segment and segment != b".":
            depth += 1
    return False


def _authority(value: bytes, default_port: bytes) -> bytes:
    value = value.lower()
    return value[: -len(default_port)] if value.endswith(default_port) else value


def check_request(request: Request) -> bytes:
    """Check a request head h11 accepted; return its target in origin form (or ``*``).

    An absolute-form target (``https://host/x?q``, RFC 9112 3.2.2) becomes ``/x?q`` once its
    authority is found to agree with ``Host``.

    Raises:
        RemoteProtocolError: 505 for a version other than 1.0/1.1, 405 for CONNECT, 400 for
            the rest (see the module's docstring).
    """
    version = request.http_version
    if version != b"1.1" and version != b"1.0":
        raise _bad(f"HTTP/{version.decode('ascii')} is not supported", 505)
    method = request.method
    if method == b"CONNECT":
        raise _bad("CONNECT is not supported: this is an origin server", 405)
    host = None
    for name, value in request.headers:
        if name == b"host":
            if HOST.fullmatch(value) is None:
                raise _bad("Host is not a valid host[:port]")
            host = value
        elif name == b"transfer-encoding" and version == b"1.0":
            raise _bad("Transfer-Encoding in an HTTP/1.0 request")
    target = request.target
    if target[:1] == b"/":
        path = target.partition(b"?")[0]
    elif target == b"*":
        if method != b"OPTIONS":
            raise _bad("the target * is for OPTIONS only")
        return target
    else:
        scheme, sep, rest = target.partition(b"://")
        default_port = _SCHEMES.get(scheme.lower())
        if not sep or default_port is None:
            raise _bad("request target in no form an origin server accepts")
        end = len(rest)
        for stop in b"/?#":
            found = rest.find(bytes([stop]))
            if 0 <= found < end:
                end = found
        authority, target = rest[:end], rest[end:]
        if not authority or b"@" in authority or HOST.fullmatch(authority) is None:
            raise _bad("absolute-form target without a valid authority")
        if host is not None and _authority(host, default_port) != _authority(
            authority, default_port
        ):
            raise _bad("the target's authority disagrees with Host")
        if target[:1] != b"/":
            target = b"/" + target
        path = target.partition(b"?")[0]
    if climbs_above_root(path):
        raise _bad("the path climbs above the root")
    return target


def check_head(
    head: Request | Response, raw: bytes, max_size: int, max_line: int, max_count: int
) -> None:
    """Every check of a head h11 accepted, ``raw`` its bytes; a request's target is made
    origin-form (``check_request``).

    Raises:
        RemoteProtocolError: see ``check_raw_head``, ``check_head_size``, ``check_request``.
    """
    check_raw_head(raw, type(head) is Request, max_line, max_count)
    check_head_size(head, max_size)
    if isinstance(head, Request):
        head.target = check_request(head)


def refused_head(
    buf: bytes, is_request: bool, max_line: int, max_count: int
) -> RemoteProtocolError | None:
    """Our reason to refuse the head at the start of ``buf``, which h11 refused too.

    Ours is the more precise one (h11 answers a duplicated ``chunked`` 501; RFC 9112 6.1
    makes it an error of the sender, 400).
    """
    end = head_end(buf)
    if end > 0:
        try:
            check_raw_head(buf[:end], is_request, max_line, max_count)
        except RemoteProtocolError as exc:
            return exc
    return None
