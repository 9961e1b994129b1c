"""The driver's plain path against h11 alone: the same bytes in, the same everything out.

Each example feeds one byte stream (plain and odd messages, pipelined, cut at random places,
with or without the peer closing) to a driver with the plain path on and to one with it off
(h11 reads every message), runs the same script of answers on both, and requires the same log:
every event, every error with its status hint, both sides' states, reusability and trailing
data after each step, and every byte written. The codec itself is tested against h11 in
tests/test_http11_plain.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import LocalProtocolError, RemoteProtocolError
from framework.http11 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    Driver,
    EndOfMessage,
    Request,
    Response,
    prepare,
)
from tests.hostile_cases import CASES

MAX = 700  # small, so that heads over the limit are easy to make

EXAMPLES = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- messages ---------------------------------------------------------------------------------

_NAMES = [b"Accept", b"user-agent", b"X-Trace-Id", b"Cookie", b"accept-encoding", b"X-A"]
_VALUES = [b"*/*", b"curl/8.5.0", b"abc123", b"a=1; b=2", b"gzip, deflate", b"", b" padded "]
_ODD_BYTES = [b"\n", b"\r", b"\0", b"\x7f", b" ", b"\t", b":", b"\x80", b"\r\n", b"\x0b"]


@st.composite
def plain_request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"PURGE"]))
    target = draw(st.sampled_from([b"/", b"/users/7", b"/a?b=c&d", b"/%7Euser", b"*"]))
    lines = [
        method + b" " + target + b" HTTP/1.1",
        b"Host: " + draw(st.sampled_from([b"h", b"localhost:8443"])),
    ]
    for _ in range(draw(st.integers(0, 4))):
        lines.append(draw(st.sampled_from(_NAMES)) + b": " + draw(st.sampled_from(_VALUES)))
    extra = draw(
        st.sampled_from(
            [
                None,
                b"Connection: close",
                b"Connection: keep-alive",
                b"Content-Length: 0",
                b"Connection: te",  # neither: h11 keeps the connection alive
                b"connection: Keep-Alive, Close",
            ]
        )
    )
    if extra is not None:
        lines.insert(draw(st.integers(1, len(lines))), extra)
    return b"\r\n".join(lines) + b"\r\n\r\n"


_ODD_REQUESTS = [
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    b"GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 800 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close, te\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n",
]


@st.composite
def odd_request(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(_ODD_REQUESTS))
    message = bytearray(draw(plain_request()))
    at = draw(st.integers(0, len(message)))
    message[at:at] = draw(st.sampled_from(_ODD_BYTES))
    return bytes(message)


def _cut(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    points = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces, last = [], 0
    for point in [*points, len(stream)]:
        if point > last:
            pieces.append(stream[last:point])
            last = point
    return pieces


@st.composite
def request_streams(draw: st.DrawFn) -> tuple[list[bytes], bool, list[int]]:
    messages = draw(
        st.lists(st.one_of(plain_request(), plain_request(), odd_request()), min_size=1, max_size=4)
    )
    answers = draw(st.lists(st.integers(0, 11), min_size=len(messages), max_size=len(messages)))
    return _cut(draw, b"".join(messages)), draw(st.booleans()), answers


# --- the script and its log -------------------------------------------------------------------


def _event(event: Any) -> Any:
    if event is NEED_DATA or event is PAUSED:
        return event.__name__
    return repr(event)


def _state(driver: Driver) -> tuple[Any, ...]:
    return (
        driver.our_state.__name__,
        driver.their_state.__name__,
        driver.is_reusable,
        driver.trailing_data,
        driver.they_are_waiting_for_100_continue,
    )


def _answer(driver: Driver, request: Request | None, kind: int) -> bytes:
    """One of the ways the server answers: whole, closing, streamed, bodiless, invalid."""
    if kind == 0 or request is None:
        return driver.send_whole(Response(200, [(b"content-type", b"text/plain")]), b"hello")
    if kind == 1:
        return driver.send_whole(Response(200, [(b"connection", b"close")]), b"bye")
    if kind == 2:
        out = driver.send(Response(200, [(b"x-streamed", b"1")], b"OK"))
        return out + driver.send(Data(b"piece")) + driver.send(EndOfMessage())
    if kind == 3:
        return driver.send_whole(Response(204, []), b"")
    if kind == 4:
        try:
            driver.send_whole(Response(200, [(b"x-bad", b"a\r\nb")]), b"x")
        except LocalProtocolError:
            pass
        return driver.send_whole(Response(500, []), b"Internal Server Error")
    return driver.send_whole(Response(404, [(b"date", b"Wed, 02 Dec 2026 00:00:00 GMT")]), b"")


def _drive(
    driver: Driver,
    log: list[Any],
    chunks: list[bytes],
    eof: bool,
    on_event: Callable[[Any], bool | None],
) -> list[Any]:
    """Feed ``chunks`` (then the end of file) and log every event and state after it.

    ``on_event`` sees each event that is not NEED_DATA or PAUSED; False from it ends the run.
    """

    def pump() -> bool:
        for _ in range(50):
            try:
                event = driver.next_event()
            except RemoteProtocolError as exc:
                log.append(("remote error", exc.status_hint, str(exc), _state(driver)))
                return False
            log.append((_event(event), _state(driver)))
            if event is NEED_DATA or event is PAUSED:
                return True
            if type(event) is ConnectionClosed or on_event(event) is False:
                return False
        raise AssertionError("the driver never asked for more data")

    for chunk in chunks:
        driver.receive_data(chunk)
        log.append(("received", len(chunk), _state(driver)))
        if not pump():
            return log
    if eof:
        driver.receive_data(b"")
        log.append(("closed", _state(driver)))
        pump()
    return log


def run_server(plain: bool, chunks: list[bytes], eof: bool, answers: list[int]) -> list[Any]:
    driver = Driver("server", MAX, plain=plain)
    log: list[Any] = [_state(driver)]
    request: Request | None = None
    answered = 0

    def on_event(event: Any) -> bool | None:
        nonlocal request, answered
        if type(event) is Request:
            request = event
        elif type(event) is EndOfMessage:
            kind = answers[answered % len(answers)]
            answered += 1
            if kind >= 6:  # look for what follows before answering (pipelining, a close)
                kind -= 6
                try:
                    log.append(("peek", _event(driver.next_event()), _state(driver)))
                except RemoteProtocolError as exc:
                    log.append(("remote error", exc.status_hint, str(exc), _state(driver)))
                    return False
            try:
                log.append(("wrote", _answer(driver, request, kind), _state(driver)))
            except LocalProtocolError as exc:
                log.append(("local error", str(exc), _state(driver)))
                return False
            if not driver.is_reusable:
                return False
            driver.start_next_cycle()
            log.append(("next cycle", _state(driver)))
        return None

    return _drive(driver, log, chunks, eof, on_event)


@EXAMPLES
@given(request_streams())
def test_server_paths_agree(stream: tuple[list[bytes], bool, list[int]]) -> None:
    chunks, eof, answers = stream
    assert run_server(True, chunks, eof, answers) == run_server(False, chunks, eof, answers)


# --- the client role --------------------------------------------------------------------------


@st.composite
def plain_response(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from([b"", b"ok", b"x" * 100]))
    status = draw(
        st.sampled_from([b"200 OK", b"201 Created", b"404 Not Found", b"500 Oops", b"200"])
    )
    lines = [b"HTTP/1.1 " + status]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(draw(st.sampled_from(_NAMES)) + b": " + draw(st.sampled_from(_VALUES)))
    lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: %d" % len(body))
    extra = draw(st.sampled_from([None, b"Connection: keep-alive", b"Keep-Alive: timeout=5"]))
    if extra is not None:
        lines.append(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_ODD_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX: " + b"v" * 800 + b"\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"NOT HTTP\r\n\r\n",
]


@st.composite
def odd_response(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(_ODD_RESPONSES))
    message = bytearray(draw(plain_response()))
    at = draw(st.integers(0, len(message)))
    message[at:at] = draw(st.sampled_from(_ODD_BYTES))
    return bytes(message)


_REQUESTS = [
    prepare(Request(b"GET", b"/", [(b"host", b"h")])),
    prepare(Request(b"GET", b"/x", [(b"host", b"h"), (b"accept", b"*/*")])),
    prepare(Request(b"HEAD", b"/", [(b"host", b"h")])),
    prepare(Request(b"POST", b"/p", [(b"host", b"h"), (b"content-length", b"2")]), b"hi"),
    prepare(Request(b"GET", b"/bye", [(b"host", b"h"), (b"connection", b"close")])),
    prepare(
        Request(b"GET", b"/ws", [(b"host", b"h"), (b"upgrade", b"x"), (b"connection", b"upgrade")])
    ),
]


@st.composite
def response_streams(draw: st.DrawFn) -> tuple[list[bytes], bool, list[int]]:
    messages = draw(
        st.lists(
            st.one_of(plain_response(), plain_response(), odd_response()), min_size=1, max_size=4
        )
    )
    requests = draw(
        st.lists(
            st.sampled_from([0, 0, 1, 2, 3, 4, 5]), min_size=len(messages), max_size=len(messages)
        )
    )
    return _cut(draw, b"".join(messages)), draw(st.booleans()), requests


def run_client(plain: bool, chunks: list[bytes], eof: bool, requests: list[int]) -> list[Any]:
    driver = Driver("client", MAX, plain=plain)
    log: list[Any] = []
    sent = 0

    def send() -> None:
        nonlocal sent
        driver.record_sent(_REQUESTS[requests[sent % len(requests)]])
        sent += 1
        log.append(("sent", _state(driver)))

    def on_event(event: Any) -> bool | None:
        if type(event) is EndOfMessage:
            if not driver.is_reusable:
                return False
            driver.start_next_cycle()
            log.append(("next cycle", _state(driver)))
            send()
        return None

    send()
    return _drive(driver, log, chunks, eof, on_event)


@EXAMPLES
@given(response_streams())
def test_client_paths_agree(stream: tuple[list[bytes], bool, list[int]]) -> None:
    chunks, eof, requests = stream
    assert run_client(True, chunks, eof, requests) == run_client(False, chunks, eof, requests)


# --- cases each check of the plain path exists for -----------------------------------------

SERVER_CASES = {
    "request that closes, then more bytes": (
        [b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"],
        False,
        [6],
    ),
    "peer closes after a request": ([b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"], True, [6]),
    "peer closes after a request that closes": (
        [b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"],
        True,
        [6],
    ),
    "connection option that is neither": (
        [b"GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\n\r\n"],
        False,
        [0],
    ),
    "TLS to plain HTTP": ([b"\x16\x03\x01\x02\x00\x01"], False, [0]),
    "incomplete head over the limit": (
        [b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 800],
        False,
        [0],
    ),
    "whole head over the limit": (
        [b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 675 + b"\r\n\r\n"],
        False,
        [0],
    ),
    "peer closes mid-head": ([b"GET / HTTP/1.1\r\nHost: h\r\n"], True, [0]),
    "peer closes between requests": (
        [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"],
        True,
        [0, 0],
    ),
}


# The hostile catalogue (tests/hostile_cases.py; the checks of http11/checks.py), whole, a
# byte at a time, and after a plain request on the same connection. MAX is small here: the
# cases over 700 bytes are refused for their size, alike on both paths.
_GOOD = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
for _name, (_data, _) in CASES.items():
    SERVER_CASES[f"hostile: {_name}"] = ([_data], False, [0])
    SERVER_CASES[f"hostile bytewise: {_name}"] = (
        [_data[i : i + 1] for i in range(min(len(_data), 2000))],
        True,
        [0],
    )
    SERVER_CASES[f"hostile after a good one: {_name}"] = ([_GOOD + _data], False, [6])


@pytest.mark.parametrize("case", SERVER_CASES.values(), ids=SERVER_CASES.keys())
def test_server_paths_agree_on(case: tuple[list[bytes], bool, list[int]]) -> None:
    assert run_server(True, *case) == run_server(False, *case)


CLIENT_CASES = {
    "peer closes mid-body": ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], True, [0]),
    "peer closes after the response": (
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        True,
        [0],
    ),
    "response that closes": (
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
        False,
        [0],
    ),
    "request that closes": ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"], False, [4]),
    "answer to HEAD": ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"], False, [2, 0]),
    "peer closes mid-head": ([b"HTTP/1.1 200 OK\r\n"], True, [0]),
    "more than the body, then the next response": (
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"
        ],
        False,
        [0, 1],
    ),
}


@pytest.mark.parametrize("case", CLIENT_CASES.values(), ids=CLIENT_CASES.keys())
def test_client_paths_agree_on(case: tuple[list[bytes], bool, list[int]]) -> None:
    assert run_client(True, *case) == run_client(False, *case)


# --- the plain path is taken where it should be -----------------------------------------------


def test_plain_requests_and_responses_stay_off_h11() -> None:
    """Without this, a plain path that always gave up would pass every test above."""
    server = Driver("server")
    server.receive_data(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
    for target in (b"/a", b"/b"):
        request = server.next_event()
        assert type(request) is Request
        assert request.target == target
        assert server.next_event() == EndOfMessage()
        server.send_whole(Response(200, []), b"ok")
        server.start_next_cycle()
        assert server.is_plain
    client = Driver("client")
    for _ in range(2):
        client.record_sent(_REQUESTS[0])
        client.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        assert [
            type(e) for e in (client.next_event(), client.next_event(), client.next_event())
        ] == [
            Response,
            Data,
            EndOfMessage,
        ]
        client.start_next_cycle()
        assert client.is_plain


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx",  # a body: always h11
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    ],
)
def test_requests_that_are_not_plain_go_to_h11(request_bytes: bytes) -> None:
    server = Driver("server")
    server.receive_data(request_bytes)
    assert type(server.next_event()) is Request
    assert not server.is_plain
