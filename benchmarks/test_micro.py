"""Micro-benchmarks of the HTTP/1.1 driver path, in memory (no sockets, no TLS).

Run:      python -m pytest benchmarks/test_micro.py
Baseline: python -m pytest benchmarks/test_micro.py --benchmark-autosave
Compare:  python -m pytest benchmarks/test_micro.py --benchmark-compare \
              --benchmark-compare-fail=mean:15%

Each benchmark is one request/response cycle of a keep-alive connection, the way the server and
the client drive it; ``h11_*`` runs the same cycle on a bare ``h11.Connection`` (three events per
response) as the yardstick. The test suite runs this file once with ``--benchmark-disable`` so
it keeps working; the timings mean something only when run on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h11
import pytest

from framework.http11 import (
    NEED_DATA,
    Data,
    Driver,
    EndOfMessage,
    Request,
    Response,
    prepare,
)
from framework.routing import Route, Router

REQUEST = (
    b"GET /users/42 HTTP/1.1\r\nHost: localhost:8443\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\n\r\n"
)
BODY = b'{"id":42,"name":"user 42"}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"date", b"Thu, 26 Nov 2026 00:00:00 GMT"),
    (b"server", b"framework"),
]
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"date: Thu, 26 Nov 2026 00:00:00 GMT\r\nserver: framework\r\n"
    b"content-length: 26\r\n\r\n" + BODY
)

Benchmark = Callable[..., Any]


def _server_cycle(driver: Driver) -> bytes:
    driver.receive_data(REQUEST)
    request = driver.next_event()
    assert type(request) is Request
    end = driver.next_event()
    assert type(end) is EndOfMessage
    wire = driver.send_whole(Response(200, HEADERS), BODY)
    driver.start_next_cycle()
    return wire


def test_micro_server_cycle(benchmark: Benchmark) -> None:
    """Parse a GET and write a whole response: what the server does per small request."""
    driver = Driver("server")
    wire = benchmark(_server_cycle, driver)
    assert wire == RESPONSE
    assert driver.next_event() is NEED_DATA


def test_micro_h11_server_cycle(benchmark: Benchmark) -> None:
    """The same cycle on a bare h11.Connection: the yardstick for the one above."""
    conn = h11.Connection(h11.SERVER)

    def cycle() -> bytes:
        conn.receive_data(REQUEST)
        assert type(conn.next_event()) is h11.Request
        assert type(conn.next_event()) is h11.EndOfMessage
        headers = [*HEADERS, (b"content-length", b"%d" % len(BODY))]
        wire = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        wire += conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())  # type: ignore[operator]
        conn.start_next_cycle()
        return wire  # type: ignore[return-value]

    assert benchmark(cycle) == RESPONSE


def test_micro_client_cycle(benchmark: Benchmark) -> None:
    """Record a GET encoded once and parse its response: the client's cycle per small GET."""
    driver = Driver("client")
    request = prepare(Request(b"GET", b"/users/42", [(b"host", b"localhost:8443")]))

    def cycle() -> bytes:
        driver.record_sent(request)
        driver.receive_data(RESPONSE)
        assert type(driver.next_event()) is Response
        data = driver.next_event()
        assert type(data) is Data
        assert type(driver.next_event()) is EndOfMessage
        driver.start_next_cycle()
        return data.data

    assert benchmark(cycle) == BODY


def test_micro_route_resolution(benchmark: Benchmark) -> None:
    """Find the route for a path with a typed parameter among a few dozen routes."""
    router = Router()

    async def handler(**_: Any) -> None:
        return None

    for i in range(30):
        router.add(Route(f"/static{i}/page", handler, ["GET"]))
    router.add(Route("/users/{user_id:int}", handler, ["GET"]))
    _, params = benchmark(router.resolve, "GET", "/users/42")
    assert params == {"user_id": 42}


@pytest.mark.parametrize("size", [13, 64 * 1024])
def test_micro_server_response_sizes(benchmark: Benchmark, size: int) -> None:
    """A whole response of a given size through the driver (the body copy shows here)."""
    driver = Driver("server")
    body = b"x" * size

    def cycle() -> int:
        driver.receive_data(REQUEST)
        driver.next_event()
        driver.next_event()
        wire = driver.send_whole(Response(200, HEADERS), body)
        driver.start_next_cycle()
        return len(wire)

    assert benchmark(cycle) > size
