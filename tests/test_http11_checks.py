"""The checks h11 leaves out (http11/checks.py), in memory, on both parsing paths.

Each case of the catalogue (tests/hostile_cases.py) is measured against h11 alone first, so
the list of what h11 lets through is a fact the test keeps true, not an assumption; then fed
to the server-role driver, plain path and h11 path, whole and a byte at a time, which must
both refuse it with the same status and refuse everything after.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest

from framework.errors import RemoteProtocolError
from framework.http11 import NEED_DATA, PAUSED, Data, Driver, EndOfMessage, Request, Response
from tests.hostile_cases import CASES, H11_ACCEPTS, get, post


def h11_accepts(data: bytes) -> bool:
    """True when h11 alone reads a request from ``data`` and raises no error after it."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    got_request = False
    try:
        for _ in range(100):
            event = conn.next_event()
            if type(event) is h11.Request:
                got_request = True
            if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.EndOfMessage:
                break
    except h11.RemoteProtocolError:
        return False
    return got_request


def test_what_h11_accepts_alone() -> None:
    measured = {name for name, (data, _) in CASES.items() if h11_accepts(data)}
    assert measured == H11_ACCEPTS


def events(driver: Driver, pieces: list[bytes]) -> tuple[list[Any], RemoteProtocolError | None]:
    """Feed ``pieces`` one by one, reading events after each; stop at the first error."""
    seen: list[Any] = []
    for piece in pieces:
        try:
            driver.receive_data(piece)
            for _ in range(100):
                event = driver.next_event()
                if event is NEED_DATA or event is PAUSED:
                    break
                seen.append(event)
                if type(event) is EndOfMessage:
                    break
        except RemoteProtocolError as exc:
            return seen, exc
    return seen, None


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", CASES.keys())
def test_driver_refuses(name: str, split: bool, plain: bool) -> None:
    data, status = CASES[name]
    driver = Driver("server", plain=plain)
    seen, error = events(driver, bytewise(data) if split else [data])
    assert error is not None, f"{name}: accepted, events {seen}"
    assert error.status_hint == status, f"{name}: {error}"
    # The request is refused before its head is given out, except when the body's framing
    # fails (the head was fine; the server must not dispatch it: tests/e2e/test_hostile.py).
    if seen:
        assert type(seen[0]) is Request, f"{name}: {seen}"
        assert b"chunked" in data, f"{name}: {seen}"
    assert not [e for e in seen if type(e) is EndOfMessage]
    # Broken once, broken for good: nothing more comes out, whatever else arrives.
    with pytest.raises(RemoteProtocolError):
        driver.next_event()
    try:
        driver.receive_data(get())
    except RemoteProtocolError:
        pass
    with pytest.raises(RemoteProtocolError):
        driver.next_event()


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_long_request_line_is_414_before_it_ends(plain: bool) -> None:
    driver = Driver("server", plain=plain)
    _, error = events(driver, [b"GET /" + b"a" * 4000, b"a" * 4000, b"a" * 1000])
    assert error is not None
    assert error.status_hint == 414


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_many_header_fields_are_431_before_the_head_ends(plain: bool) -> None:
    driver = Driver("server", plain=plain)
    lines = [b"GET / HTTP/1.1\r\nHost: a\r\n"] + [b"X-%d: a\r\n" % i for i in range(101)]
    _, error = events(driver, lines)
    assert error is not None
    assert error.status_hint == 431


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_limits_are_the_drivers_to_set(plain: bool) -> None:
    driver = Driver("server", plain=plain, max_request_line_bytes=100, max_header_count=2)
    _, error = events(driver, [get(target=b"/" + b"a" * 100)])
    assert error is not None
    assert error.status_hint == 414
    driver = Driver("server", plain=plain, max_request_line_bytes=100, max_header_count=2)
    _, error = events(driver, [get(b"A: 1", b"B: 2")])
    assert error is not None
    assert error.status_hint == 431
    driver = Driver("server", plain=plain, max_request_line_bytes=100, max_header_count=2)
    seen, error = events(driver, [get(b"A: 1", target=b"/" + b"a" * 80)])
    assert error is None
    assert type(seen[0]) is Request


# --- odd but valid: accepted ---------------------------------------------------------------


def first_request(data: bytes, plain: bool) -> tuple[Request, list[Any]]:
    driver = Driver("server", plain=plain)
    seen, error = events(driver, [data])
    assert error is None, error
    assert type(seen[0]) is Request
    return seen[0], seen[1:]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
@pytest.mark.parametrize(
    ("target", "origin"),
    [
        (b"https://localhost/x?a=1", b"/x?a=1"),
        (b"https://LOCALHOST:443/x", b"/x"),
        (b"http://localhost", b"/"),
        (b"https://localhost?q", b"/?q"),
    ],
)
def test_absolute_form_becomes_origin_form(target: bytes, origin: bytes, plain: bool) -> None:
    request, _ = first_request(get(target=target), plain)
    assert request.target == origin


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
@pytest.mark.parametrize(
    "data",
    [
        get(target=b"*", method=b"OPTIONS"),
        get(target=b"/a/../b/./c"),  # stays under the root: messages.Request resolves it
        get(target=b"/a%2e%2e"),  # not a dot-segment: "a.." is a name
        b"GET /x HTTP/1.0\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        post(b"Content-Length: 3", body=b"abc"),
    ],
)
def test_odd_but_valid_requests_are_accepted(data: bytes, plain: bool) -> None:
    request, rest = first_request(data, plain)
    assert type(rest[-1]) is EndOfMessage
    assert request.target == data.split(b" ")[1]


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_trailers_are_accepted(plain: bool) -> None:
    data = post(b"Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n")
    request, rest = first_request(data, plain)
    assert rest == [Data(b"abc"), EndOfMessage([(b"x-sum", b"1")])]


# --- the client role ------------------------------------------------------------------------

RESPONSES: dict[str, bytes] = {
    "CL and TE": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    "two equal CL": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "conflicting CL": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "CL list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "DEL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "chunk size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nok\r\n0\r\n\r\n",
    "chunk without its CRLF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nokXX0\r\n\r\n",
    "chunk lines with bare LF": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n",
    "chunked twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
}


def client_after_get(plain: bool) -> Driver:
    driver = Driver("client", plain=plain)
    driver.send(Request(b"GET", b"/", [(b"host", b"localhost")]))
    driver.send(EndOfMessage())
    return driver


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", RESPONSES.keys())
def test_client_driver_refuses(name: str, split: bool, plain: bool) -> None:
    data = RESPONSES[name]
    driver = client_after_get(plain)
    seen, error = events(driver, bytewise(data) if split else [data])
    assert error is not None, f"{name}: accepted, events {seen}"
    assert not [e for e in seen if type(e) is EndOfMessage]
    with pytest.raises(RemoteProtocolError):
        driver.next_event()


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_client_driver_reads_a_valid_chunked_response(plain: bool) -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
    seen, error = events(client_after_get(plain), bytewise(data))
    assert error is None
    assert type(seen[0]) is Response
    assert b"".join(e.data for e in seen if type(e) is Data) == b"ok"
    assert seen[-1] == EndOfMessage([(b"x-t", b"1")])


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "h11"])
def test_head_over_the_limit_in_whitespace_h11_strips(plain: bool) -> None:
    # h11 strips the OWS around a value, so the head it reports is small; the bytes were not.
    driver = Driver("server", plain=plain)
    _, error = events(driver, [get(b"X-A: a" + b" " * 17_000)])
    assert error is not None
    assert error.status_hint == 431
