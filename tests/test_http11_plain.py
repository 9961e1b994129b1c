"""The plain-message codec against h11: what it reads, h11 reads the same; the rest it refuses.

Every head the codec accepts is also fed to a fresh ``h11.Connection`` (with the blank line,
and for responses after a GET and with the body), and the two must agree on everything the
caller relies on: the fields of the event, no body for requests, the body's length for
responses, and no 100-continue wait or protocol switch afterwards. Heads are generated plain
(which must be accepted) and odd (mutations of plain ones, and random bytes, which may go
either way but must never be read differently). A table of odd cases, one or more for each
check in the codec, must be refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.http11 import plain as codec
from framework.http11.plain import MAX_HEAD, parse_request_head, parse_response_head

CRLF = b"\r\n"

# Fixed examples: the same heads every run, so a failure here is a failure everywhere.
SETTINGS = settings(max_examples=400, deadline=None, derandomize=True, database=None)


# -- what h11 makes of a head -------------------------------------------------------------------


@dataclass(frozen=True)
class H11Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    waits_for_100_continue: bool
    next_event: type
    state_after: object


@dataclass(frozen=True)
class H11Response:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    body: bytes
    ended: bool  # EndOfMessage came after the body
    state_after: object


def h11_request(head: bytes) -> H11Request | None:
    """What a fresh h11 server makes of ``head`` and the blank line; None when it refuses."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head + CRLF + CRLF)
    try:
        event = conn.next_event()
        if type(event) is not h11.Request:
            raise AssertionError(f"h11 gave {event!r}, not a Request, for {head!r}")
        waits = conn.they_are_waiting_for_100_continue
        after = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    return H11Request(
        event.method,
        event.target,
        list(event.headers),
        event.http_version,
        waits,
        type(after) if isinstance(after, h11.Event) else after,
        conn.their_state,
    )


GET = h11.Request(method="GET", target="/", headers=[("Host", "example.com")])


def h11_response(head: bytes, body: bytes) -> H11Response | None:
    """What a fresh h11 client that sent a GET makes of ``head``, the blank line and ``body``."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(GET)
    conn.send(h11.EndOfMessage())
    conn.receive_data(head + CRLF + CRLF + body)
    try:
        event = conn.next_event()
        if type(event) is not h11.Response:
            # An InformationalResponse (1xx): never plain. NEED_DATA cannot come after a head.
            return None
        got = b""
        ended = False
        for _ in range(len(body) + 2):
            more = conn.next_event()
            if type(more) is h11.Data:
                got += more.data
            else:
                ended = type(more) is h11.EndOfMessage
                break
    except h11.RemoteProtocolError:
        return None
    return H11Response(
        event.status_code,
        event.reason,
        list(event.headers),
        event.http_version,
        got,
        ended,
        conn.their_state,
    )


def all_bytes(*items: object) -> bool:
    """True when the items, and those of nested lists and tuples, are bytes (not bytearray)."""
    for item in items:
        if isinstance(item, list | tuple):
            if not all_bytes(*item):
                return False
        elif type(item) is not bytes:
            return False
    return True


def assert_request_as_h11(head: bytes) -> bool:
    """Parse ``head``; if accepted, h11 must read it the same. True when accepted."""
    ours = parse_request_head(head)
    theirs = h11_request(head)
    if theirs is None:
        assert ours is None, f"h11 refuses {head!r}, the codec read {ours!r}"
    if ours is None:
        return False
    assert theirs is not None
    method, target, headers = ours
    assert all_bytes(method, target, headers)
    assert (method, target, headers) == (theirs.method, theirs.target, theirs.headers), head
    assert theirs.http_version == b"1.1"
    assert not theirs.waits_for_100_continue
    assert theirs.next_event is h11.EndOfMessage, head
    # Not MIGHT_SWITCH_PROTOCOL (CONNECT, Upgrade): the connection carries HTTP on.
    assert theirs.state_after in (h11.DONE, h11.MUST_CLOSE), head
    return True


def assert_response_as_h11(head: bytes) -> bool:
    """Parse ``head``; if accepted, h11 must read it, and that many body bytes, the same."""
    ours = parse_response_head(head)
    if ours is None:
        # The body h11 would want is unknown here; with none, it must still not read a head
        # that is not there (this is what "h11 refuses, so must we" means for responses).
        return False
    status, reason, headers, length = ours
    assert type(status) is int
    assert type(length) is int
    assert all_bytes(reason, headers)
    body = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    theirs = h11_response(head, body)
    assert theirs is not None, f"h11 refuses {head!r}, the codec read {ours!r}"
    assert (status, reason, headers) == (theirs.status, theirs.reason, theirs.headers), head
    assert theirs.http_version == b"1.1"
    assert theirs.body == body, head
    assert theirs.ended, head
    assert theirs.state_after in (h11.DONE, h11.MUST_CLOSE), head
    return True


def check_response_refusals(head: bytes) -> None:
    """When h11 refuses ``head`` (whatever body follows), the codec must refuse it too."""
    if h11_response(head, b"") is None and h11_response(head, b"x" * 64) is None:
        assert parse_response_head(head) is None, head


# -- plain heads --------------------------------------------------------------------------------

TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHAR = bytes(range(0x21, 0x7F))
OBS_TEXT = bytes(range(0x80, 0x100))
SPECIAL_REQUEST = {b"host", b"content-length", b"transfer-encoding", b"expect", b"upgrade"}
SPECIAL_RESPONSE = {b"content-length", b"transfer-encoding"}


def chars(alphabet: bytes, min_size: int, max_size: int) -> st.SearchStrategy[bytes]:
    """Byte strings over ``alphabet``: random bytes mapped onto it, far quicker to draw."""
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    return st.binary(min_size=min_size, max_size=max_size).map(lambda b: b.translate(table))


tokens = chars(TCHAR, 1, 12)
ows = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t ", b"\t\t"])
field_vchars = st.one_of(chars(VCHAR, 1, 10), chars(VCHAR + OBS_TEXT, 1, 6))
# field-content: field-vchars, runs of SP and HTAB only between them.
values = st.lists(
    st.tuples(field_vchars, st.sampled_from([b" ", b"\t", b"  ", b" \t"])), max_size=4
).map(lambda words: b"".join(w + s for w, s in words).rstrip(b" \t"))
common_methods = st.sampled_from(
    [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"connect"]
)
methods = st.one_of(common_methods, tokens.filter(lambda m: m != b"CONNECT"))
# Origin-form targets without a dot-segment or a percent-escape in the path: the plain subset
# (checks.py judges the others, on h11's path).
PATH_CHARS = bytes(c for c in VCHAR if c not in b"%.?")
plain_targets = st.one_of(
    chars(PATH_CHARS, 0, 30).map(lambda path: b"/" + path),
    st.tuples(chars(PATH_CHARS, 0, 12), chars(VCHAR, 0, 12)).map(
        lambda pq: b"/" + pq[0] + b"?" + pq[1]
    ),
    st.sampled_from([b"/a.b/c.txt", b"/x?q=%20&r=..", b"/static/app.js"]),
)
# Host values within checks.HOST (reg-name, IP literal, optional port).
HOST_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;="
hosts = st.one_of(
    chars(HOST_CHARS, 0, 20),
    st.tuples(chars(HOST_CHARS, 1, 12), st.integers(0, 65535)).map(
        lambda hp: hp[0] + b":%d" % hp[1]
    ),
    st.sampled_from([b"localhost", b"[::1]:8443", b"127.0.0.1:443", b"example.com:"]),
)
targets = st.one_of(
    chars(VCHAR, 0, 30).map(lambda path: b"/" + path),
    st.sampled_from([b"*", b"http://example.com/a?b=c", b"example.com:443", b"//x", b"/%00"]),
    chars(VCHAR, 1, 20),
)


def header_lines(
    names: st.SearchStrategy[bytes], max_size: int = 8
) -> st.SearchStrategy[list[tuple[bytes, bytes, bytes, bytes]]]:
    """(name, OWS, value, OWS) tuples; the line is name ":" OWS value OWS."""
    return st.lists(st.tuples(names, ows, values, ows), max_size=max_size)


def join_lines(first: bytes, lines: list[tuple[bytes, bytes, bytes, bytes]]) -> bytes:
    return CRLF.join([first, *(n + b":" + a + v + b for n, a, v, b in lines)])


@st.composite
def plain_requests(draw: st.DrawFn) -> bytes:
    ordinary = tokens.filter(lambda n: n.lower() not in SPECIAL_REQUEST)
    lines = draw(header_lines(ordinary))
    host_name = draw(st.sampled_from([b"Host", b"host", b"HOST", b"hOsT"]))
    host = (host_name, draw(ows), draw(hosts), draw(ows))
    lines.insert(draw(st.integers(0, len(lines))), host)
    if draw(st.booleans()):
        name = draw(st.sampled_from([b"Content-Length", b"content-length"]))
        lines.insert(draw(st.integers(0, len(lines))), (name, draw(ows), b"0", draw(ows)))
    first = draw(methods) + b" " + draw(plain_targets) + b" HTTP/1.1"
    return join_lines(first, lines)


reasons = st.one_of(
    st.none(),  # "HTTP/1.1 200", no SP at all
    st.sampled_from([b"", b"OK", b"Not Found", b" OK ", b"\tweird\t", b"caf\xc3\xa9"]),
    chars(VCHAR + OBS_TEXT + b" \t", 0, 20),
)
plain_statuses = st.integers(200, 599).filter(lambda s: s not in (204, 304))


@st.composite
def plain_responses(draw: st.DrawFn) -> bytes:
    # Host, Expect and Upgrade are ordinary in a response to a GET.
    ordinary = st.one_of(
        tokens.filter(lambda n: n.lower() not in SPECIAL_RESPONSE),
        st.sampled_from([b"Host", b"Expect", b"Upgrade", b"Connection"]),
    )
    lines = draw(header_lines(ordinary))
    length = draw(st.integers(0, 3000))
    digits = b"0" * draw(st.integers(0, 2)) + str(length).encode()
    name = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
    lines.insert(draw(st.integers(0, len(lines))), (name, draw(ows), digits, draw(ows)))
    status = str(draw(plain_statuses)).encode()
    reason = draw(reasons)
    first = b"HTTP/1.1 " + status + (b"" if reason is None else b" " + reason)
    return join_lines(first, lines)


@SETTINGS
@given(plain_requests())
def test_plain_request_is_read_as_h11_reads_it(head: bytes) -> None:
    assert assert_request_as_h11(head), f"refused a plain request: {head!r}"


@SETTINGS
@given(plain_responses())
def test_plain_response_is_read_as_h11_reads_it(head: bytes) -> None:
    assert assert_response_as_h11(head), f"refused a plain response: {head!r}"


# -- odd heads: plain ones mutated, and random bytes ---------------------------------------------

ODD_BYTES = b'\r\n\x00\x7f\t \x0b\x0c\x01\x1f\x80\xff:,;"=(\\'
ODD_REQUEST_LINES = [
    b"CONNECT example.com:443 HTTP/1.1",
    b"GET / HTTP/1.0",
    b"GET / HTTP/1.2",
    b"GET / http/1.1",
    b"GET http://example.com/ HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET  / HTTP/1.1",
    b"GET / HTTP/1.1 ",
    b" GET / HTTP/1.1",
    b"GET /",
    b"get / HTTP/1.1",
]
ODD_STATUS_LINES = [
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 20 OK",
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.1 600 Odd",
    b"HTTP/1.1 999",
    b"http/1.1 200 OK",
]
ODD_LINES = [
    b"Host: other.example",
    b"Content-Length: 0",
    b"Content-Length: 5",
    b"Content-Length: 0, 0",
    b"Content-Length: 00",
    b"Content-Length: 7, 7",
    b"Content-Length: +7",
    b"Content-Length:",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: Chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Expect: 100-continue",
    b"Expect: something",
    b"Upgrade: websocket",
    b"Upgrade:",
    b"Connection: close",
    b"Connection: keep-alive, Upgrade",
    b" folded continuation",
    b"\tfolded continuation",
    b"Name : value",
    b"Name\t: value",
    b": no name",
    b"no colon",
    b"X-Ctl: a\x01b",
    b"X-Del: a\x7fb",
    b"X-Obs: caf\xc3\xa9",
    b"",
]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], first_lines: list[bytes]) -> bytes:
    head = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 8))
        where = draw(st.integers(0, len(head)))
        if kind == 0:  # insert an odd byte
            head = head[:where] + bytes([draw(st.sampled_from(ODD_BYTES))]) + head[where:]
        elif kind == 1:  # insert any byte
            head = head[:where] + bytes([draw(st.integers(0, 255))]) + head[where:]
        elif kind == 2:  # delete a few bytes
            head = head[:where] + head[where + draw(st.integers(1, 3)) :]
        elif kind == 3:  # replace a byte
            head = head[:where] + bytes([draw(st.sampled_from(ODD_BYTES))]) + head[where + 1 :]
        elif kind == 4:  # insert an odd header line
            lines = head.split(CRLF)
            lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(ODD_LINES)))
            head = CRLF.join(lines)
        elif kind == 5:  # replace the first line
            lines = head.split(CRLF)
            lines[0] = draw(st.sampled_from(first_lines))
            head = CRLF.join(lines)
        elif kind == 6:  # repeat a line
            lines = head.split(CRLF)
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(1, len(lines))), lines[index])
            head = CRLF.join(lines)
        elif kind == 7:  # a leading empty line, CRLF or bare LF
            head = draw(st.sampled_from([CRLF, b"\n", b"\r"])) + head
        else:  # change the case of everything
            head = draw(st.sampled_from([bytes.upper, bytes.lower, bytes.swapcase]))(head)
    return head


@SETTINGS
@given(mutated(plain_requests(), ODD_REQUEST_LINES))
def test_odd_request_is_refused_or_read_as_h11_reads_it(head: bytes) -> None:
    assert_request_as_h11(head)


@SETTINGS
@given(mutated(plain_responses(), ODD_STATUS_LINES))
def test_odd_response_is_refused_or_read_as_h11_reads_it(head: bytes) -> None:
    check_response_refusals(head)
    assert_response_as_h11(head)


@SETTINGS
@given(
    st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: a\r\n", b"HTTP/1.1 200 OK\r\n"]),
    st.binary(max_size=60),
)
def test_random_bytes_are_refused_or_read_as_h11_reads_them(prefix: bytes, tail: bytes) -> None:
    assert_request_as_h11(prefix + tail)
    check_response_refusals(prefix + tail)
    assert_response_as_h11(prefix + tail)


# -- explicit cases -----------------------------------------------------------------------------

REQUEST = (
    b"GET /api/items?page=2 HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=3f2a9c1e7b6d4a08; theme=dark"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 27\r\n"
    b"Date: Mon, 03 Jun 2024 10:00:00 GMT\r\n"
    b"Server: framework"
)


def test_typical_heads_are_read_as_h11_reads_them() -> None:
    assert parse_request_head(REQUEST) == (
        b"GET",
        b"/api/items?page=2",
        [
            (b"host", b"example.com"),
            (
                b"user-agent",
                b"Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
            ),
            (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            (b"accept-encoding", b"gzip, deflate, br"),
            (b"connection", b"keep-alive"),
            (b"cookie", b"session=3f2a9c1e7b6d4a08; theme=dark"),
        ],
    )
    assert assert_request_as_h11(REQUEST)
    assert parse_response_head(RESPONSE) == (
        200,
        b"OK",
        [
            (b"content-type", b"application/json"),
            (b"content-length", b"27"),
            (b"date", b"Mon, 03 Jun 2024 10:00:00 GMT"),
            (b"server", b"framework"),
        ],
        27,
    )
    assert assert_response_as_h11(RESPONSE)


def edit(base: bytes, old: bytes, new: bytes) -> bytes:
    assert old in base, old
    return base.replace(old, new, 1)


def req(old: bytes, new: bytes) -> bytes:
    return edit(REQUEST, old, new)


def resp(old: bytes, new: bytes) -> bytes:
    return edit(RESPONSE, old, new)


UA = b"User-Agent: Mozilla"
CT = b"Content-Type: application/json"

# Each refused head is the typical one with one thing changed; the comment names the check
# in the codec that refuses it.
REFUSED_REQUESTS: dict[str, bytes] = {
    # length
    "longer than MAX_HEAD": req(b"theme=dark", b"theme=" + b"d" * MAX_HEAD),
    # bytes: control bytes and lone CR or LF
    "NUL in a value": req(b"gzip", b"gz\x00ip"),
    "DEL in a value": req(b"gzip", b"gz\x7fip"),
    "SOH in a value": req(b"gzip", b"gz\x01ip"),
    "VT in a value": req(b"gzip", b"gz\x0bip"),
    "FF after a value": req(b"keep-alive", b"keep-alive\x0c"),
    "ESC in the target": req(b"page=2", b"page=\x1b2"),
    "DEL in the target": req(b"page=2", b"page=\x7f2"),
    "bare LF between lines": req(b"example.com\r\n", b"example.com\n"),
    "bare CR between lines": req(b"example.com\r\n", b"example.com\r"),
    "bare LF in a value": req(b"gzip, deflate", b"gzip,\ndeflate"),
    "bare CR in a value": req(b"gzip, deflate", b"gzip,\rdeflate"),
    "CR CR LF line end": req(b"example.com\r\n", b"example.com\r\r\n"),
    "LF-only line ends": REQUEST.replace(CRLF, b"\n"),
    "leading bare LF": b"\n" + REQUEST,
    # request line: three parts
    "leading CRLF": CRLF + REQUEST,
    "two SP after the method": req(b"GET /", b"GET  /"),
    "SP after the version": req(b"HTTP/1.1", b"HTTP/1.1 "),
    "HTAB for SP": req(b"GET /", b"GET\t/"),
    "no version": req(b" HTTP/1.1", b""),
    "SP in the target": req(b"page=2", b"page= 2"),
    # version
    "HTTP/1.0": req(b"HTTP/1.1", b"HTTP/1.0"),
    "HTTP/1.2": req(b"HTTP/1.1", b"HTTP/1.2"),
    "lowercase http/1.1": req(b"HTTP/1.1", b"http/1.1"),
    "HTTP/2.0": req(b"HTTP/1.1", b"HTTP/2.0"),
    # method
    "empty method": req(b"GET /", b" /"),
    "method with a delimiter": req(b"GET /", b"G(T /"),
    "method with obs-text": req(b"GET /", b"G\xc3\x89T /"),
    "CONNECT": req(b"GET /api/items?page=2", b"CONNECT example.com:443"),
    # target
    "empty target": req(b"GET /api/items?page=2 ", b"GET  "),
    "obs-text in the target": req(b"items", b"it\xc3\xa9ms"),
    "HTAB in the target": req(b"page=2", b"page=\t2"),
    # header lines
    "line without a colon": req(UA, b"User-Agent Mozilla"),
    "a token alone on a line": req(b"\r\nCookie", b"\r\nX-Flag\r\nCookie"),
    "cached name without a colon": req(b"Connection: keep-alive", b"Connection"),
    "empty line among the headers": req(b"\r\nCookie", b"\r\n\r\nCookie"),
    "SP before the colon": req(UA, b"User-Agent : Mozilla"),
    "HTAB before the colon": req(UA, b"User-Agent\t: Mozilla"),
    "SP in a name": req(UA, b"User Agent: Mozilla"),
    "empty name": req(UA, b": Mozilla"),
    "delimiter in a name": req(UA, b"User/Agent: Mozilla"),
    "obs-text in a name": req(UA, b"User-\xc3\x84gent: Mozilla"),
    "obs-fold with SP": req(b"\r\nAccept-Encoding", b"\r\n more\r\nAccept-Encoding"),
    "obs-fold with HTAB": req(b"\r\nAccept-Encoding", b"\r\n\tmore\r\nAccept-Encoding"),
    # Host
    "no Host": req(b"Host: example.com\r\n", b""),
    "two Hosts": req(b"Host: example.com", b"Host: example.com\r\nHost: example.com"),
    "two Hosts, other case": req(b"Host: example.com", b"Host: a\r\nHOST: a"),
    # Content-Length
    "Content-Length 5": req(b"Host", b"Content-Length: 5\r\nHost"),
    "Content-Length 00": req(b"Host", b"Content-Length: 00\r\nHost"),
    "Content-Length +0": req(b"Host", b"Content-Length: +0\r\nHost"),
    "Content-Length 0, 0": req(b"Host", b"Content-Length: 0, 0\r\nHost"),
    "Content-Length empty": req(b"Host", b"Content-Length:\r\nHost"),
    "two Content-Length 0": req(b"Host", b"Content-Length: 0\r\ncontent-length: 0\r\nHost"),
    # Transfer-Encoding, Expect, Upgrade
    "Transfer-Encoding chunked": req(b"Host", b"Transfer-Encoding: chunked\r\nHost"),
    "Transfer-Encoding Chunked": req(b"Host", b"Transfer-Encoding: Chunked\r\nHost"),
    "Transfer-Encoding and Content-Length 0": req(
        b"Host", b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\nHost"
    ),
    "Expect 100-continue": req(b"Host", b"Expect: 100-continue\r\nHost"),
    "Expect anything": req(b"Host", b"Expect: whatever\r\nHost"),
    "Upgrade websocket": req(b"Host", b"Upgrade: websocket\r\nHost"),
    "Upgrade empty": req(b"Host", b"Upgrade:\r\nHost"),
    # what checks.py judges, on h11's path: target forms, dot-segments, Host values
    "asterisk target": req(b"/api/items?page=2", b"*"),
    "absolute-form target": req(b"/api/items", b"https://example.com/api/items"),
    "authority-form target": req(b"/api/items?page=2", b"example.com:443"),
    "dot-segment": req(b"/api/items", b"/api/../items"),
    "single-dot segment": req(b"/api/items", b"/api/./items"),
    "percent-escape in the path": req(b"/api/items", b"/api/%2e%2e/items"),
    "Host with SP and delimiters": req(b"Host: example.com", b"Host: a b/c@d"),
    "Host with userinfo": req(b"Host: example.com", b"Host: user@example.com"),
}

REFUSED_RESPONSES: dict[str, bytes] = {
    # length and bytes (the same code as for requests)
    "longer than MAX_HEAD": resp(b"framework", b"f" * MAX_HEAD),
    "NUL in a value": resp(b"application/json", b"application/\x00json"),
    "SOH in a value": resp(b"application/json", b"application/\x01json"),
    "DEL in the reason": resp(b"200 OK", b"200 O\x7fK"),
    "bare LF between lines": resp(b"OK\r\n", b"OK\n"),
    "bare CR in a value": resp(b"application/json", b"application/\rjson"),
    "leading CRLF": CRLF + RESPONSE,
    # status line
    "status line too short": resp(b"HTTP/1.1 200 OK", b"HTTP/1.1 20"),
    "HTTP/1.0": resp(b"HTTP/1.1", b"HTTP/1.0"),
    "lowercase http/1.1": resp(b"HTTP/1.1", b"http/1.1"),
    "two SP before the status": resp(b"HTTP/1.1 200", b"HTTP/1.1  200"),
    "no SP before the reason": resp(b"200 OK", b"200OK"),
    "four digits": resp(b"200 OK", b"2000 OK"),
    "two digits": resp(b"200 OK", b"20 OK"),
    "sign in the status": resp(b"200 OK", b"+20 OK"),
    "letter in the status": resp(b"200 OK", b"2a0 OK"),
    "HTAB before the reason": resp(b"200 OK", b"200\tOK"),
    # status
    "100": resp(b"200 OK", b"100 Continue"),
    "101": resp(b"200 OK", b"101 Switching Protocols"),
    "199": resp(b"200 OK", b"199 Odd"),
    "099": resp(b"200 OK", b"099 Odd"),
    "204": resp(b"200 OK", b"204 No Content"),
    "304": resp(b"200 OK", b"304 Not Modified"),
    "600": resp(b"200 OK", b"600 Odd"),
    # header lines
    "line without a colon": resp(CT, b"Content-Type application/json"),
    "a token alone on a line": resp(b"\r\nServer", b"\r\nX-Flag\r\nServer"),
    "cached name without a colon": resp(b"Server: framework", b"Server"),
    "SP before the colon": resp(CT, b"Content-Type : application/json"),
    "empty name": resp(CT, b": application/json"),
    "obs-fold": resp(b"\r\nDate", b"\r\n folded\r\nDate"),
    # Content-Length
    "no Content-Length": resp(b"Content-Length: 27\r\n", b""),
    "two Content-Length, same": resp(
        b"Content-Length: 27", b"Content-Length: 27\r\nContent-Length: 27"
    ),
    "two Content-Length, differing": resp(
        b"Content-Length: 27", b"Content-Length: 27\r\ncontent-length: 28"
    ),
    "Content-Length list": resp(b"Content-Length: 27", b"Content-Length: 27, 27"),
    "Content-Length +27": resp(b"Content-Length: 27", b"Content-Length: +27"),
    "Content-Length 2 7": resp(b"Content-Length: 27", b"Content-Length: 2 7"),
    "Content-Length hex": resp(b"Content-Length: 27", b"Content-Length: 0x1b"),
    "Content-Length empty": resp(b"Content-Length: 27", b"Content-Length:"),
    "Content-Length Arabic-Indic digits": resp(b"Content-Length: 27", b"Content-Length: \xd9\xa2"),
    "Content-Length 19 digits": resp(b"Content-Length: 27", b"Content-Length: " + b"1" * 19),
    # Transfer-Encoding
    "Transfer-Encoding chunked": resp(b"Content-Length: 27", b"Transfer-Encoding: chunked"),
    "Transfer-Encoding and Content-Length": resp(
        b"Content-Length: 27", b"Content-Length: 27\r\nTransfer-Encoding: chunked"
    ),
}


@pytest.mark.parametrize("head", REFUSED_REQUESTS.values(), ids=REFUSED_REQUESTS.keys())
def test_odd_request_is_refused(head: bytes) -> None:
    assert parse_request_head(REQUEST) is not None  # and its names are cached
    assert parse_request_head(head) is None
    assert_request_as_h11(head)


@pytest.mark.parametrize("head", REFUSED_RESPONSES.values(), ids=REFUSED_RESPONSES.keys())
def test_odd_response_is_refused(head: bytes) -> None:
    assert parse_response_head(RESPONSE) is not None
    assert parse_response_head(head) is None


# Accepted although unusual: h11 reads each the same, which assert_*_as_h11 checks.
ACCEPTED_REQUESTS: dict[str, bytes] = {
    "lowercase connect is an ordinary method to h11": req(b"GET", b"connect"),
    "obs-text in a value": req(b"theme=dark", b"theme=caf\xc3\xa9"),
    "HTAB and SP runs inside a value": req(b"gzip, deflate", b"gzip,\t \tdeflate"),
    "OWS of SP and HTAB around a value": req(b": example.com", b":\t example.com \t"),
    "empty value": req(b"keep-alive", b""),
    "empty Host": req(b"Host: example.com", b"Host:"),
    "no space after the colon": req(b"Host: example.com", b"Host:example.com"),
    "Content-Length 0": req(b"Host", b"Content-Length: 0\r\nHost"),
    "Connection close": req(b"keep-alive", b"close"),
    "no headers but Host": b"GET / HTTP/1.1\r\nHost: a",
}
ACCEPTED_RESPONSES: dict[str, bytes] = {
    "no reason, no SP": resp(b"200 OK", b"200"),
    "empty reason": resp(b"200 OK", b"200 "),
    "reason with its spaces kept": resp(b"200 OK", b"200  OK \t"),
    "reason with obs-text": resp(b"200 OK", b"200 Tr\xc3\xa8s bien"),
    "599": resp(b"200 OK", b"599 Odd"),
    "Content-Length 0": resp(b"Content-Length: 27", b"Content-Length: 0"),
    "Content-Length with leading zeros": resp(b"Content-Length: 27", b"Content-Length: 0027"),
    "Content-Length with OWS": resp(b"Content-Length: 27", b"Content-Length:\t27  "),
    "Upgrade in a 200 to a GET": resp(
        b"Server", b"Upgrade: h2,h2c\r\nConnection: Upgrade\r\nServer"
    ),
    "Expect and Host are ordinary in a response": resp(
        b"Server", b"Expect: x\r\nHost: y\r\nServer"
    ),
    "Connection close": resp(b"Server", b"Connection: close\r\nServer"),
}


@pytest.mark.parametrize("head", ACCEPTED_REQUESTS.values(), ids=ACCEPTED_REQUESTS.keys())
def test_unusual_request_is_read_as_h11_reads_it(head: bytes) -> None:
    assert assert_request_as_h11(head)


@pytest.mark.parametrize("head", ACCEPTED_RESPONSES.values(), ids=ACCEPTED_RESPONSES.keys())
def test_unusual_response_is_read_as_h11_reads_it(head: bytes) -> None:
    assert assert_response_as_h11(head)


def test_reason_and_length_are_reported_as_sent() -> None:
    assert parse_response_head(resp(b"200 OK", b"200")) == parse_response_head(
        resp(b"200 OK", b"200 ")
    )
    parsed = parse_response_head(resp(b"200 OK", b"404  Not Found "))
    assert parsed is not None
    assert parsed[:2] == (404, b" Not Found ")
    parsed = parse_response_head(resp(b"Content-Length: 27", b"Content-Length: 0027"))
    assert parsed is not None
    assert parsed[3] == 27
    assert (b"content-length", b"0027") in parsed[2]


# -- the caches ---------------------------------------------------------------------------------


@pytest.fixture
def empty_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh, empty caches for one test, so that filling them leaves the others as they were."""
    monkeypatch.setattr(codec, "_names", {})
    monkeypatch.setattr(codec, "_special_names", {})
    monkeypatch.setattr(codec, "_methods", set())


@pytest.mark.usefixtures("empty_caches")
def test_caches_stay_bounded_and_a_full_cache_reads_the_same() -> None:
    limit = codec._CACHE_MAX
    for i in range(limit + 200):
        head = b"M%d / HTTP/1.1\r\nHost: a\r\nX-Name-%d: v\r\nHOST%d: x" % (i, i, i)
        assert assert_request_as_h11(head)
    # The special names have spellings enough to fill their cache too.
    letters = [(k, c) for k, c in enumerate(b"content-length") if c != ord("-")]
    spellings = []
    for i in range(limit + 200):
        spelling = bytearray(b"content-length")
        for bit, (k, c) in enumerate(letters):
            if (i >> bit) & 1:
                spelling[k] = c - 0x20
        spellings.append(bytes(spelling))
    for spelling in spellings:
        assert parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + spelling + b": 0") is not None
    assert len(codec._names) == limit
    assert len(codec._special_names) == limit
    assert len(codec._methods) == limit
    # Names and methods past the caches are still checked, and special names still special.
    fresh = spellings[-1]
    assert fresh not in codec._special_names
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + fresh + b": 5") is None
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nhOST: b") is None
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nTRANSFER-encoding: chunked") is None
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX Y: z") is None
    assert parse_request_head(b"G(T / HTTP/1.1\r\nHost: a") is None
    assert parse_response_head(b"HTTP/1.1 200 OK\r\n" + fresh + b": 1\r\ncontent-LENGTH: 1") is None
    assert assert_request_as_h11(b"NEW / HTTP/1.1\r\nHost: a\r\nX-New: b")
    assert assert_response_as_h11(b"HTTP/1.1 200 OK\r\n" + fresh + b": 3\r\nX-New: b")


def check_table_is_not_vacuous(
    table: dict[str, bytes], parse: Callable[[bytes], object], base: bytes
) -> None:
    assert parse(base) is not None
    assert all(case != base for case in table.values())


def test_tables_are_edits_of_an_accepted_head() -> None:
    check_table_is_not_vacuous(REFUSED_REQUESTS, parse_request_head, REQUEST)
    check_table_is_not_vacuous(REFUSED_RESPONSES, parse_response_head, RESPONSE)
