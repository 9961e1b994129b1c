"""Fuzzing the server's HTTP/1.1 reading: random and mutated requests, in memory and over TLS.

Requests are drawn from a corpus (valid requests of every framing, and the catalogue of
hostile ones in tests/hostile_cases.py), mutated byte by byte and line by line, pipelined
and cut at random places. In memory, each stream is fed to a server-role ``Driver`` on the
plain path and on h11's, in random pieces: the only exception allowed is our
``RemoteProtocolError``, after an error no further event comes, and both paths must see the
same events and the same error. Over TLS, a bounded run against a running server: it never
fails, never leaks a task or a connection, and every connection ends with complete, valid
responses and a clean close.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import Request as AppRequest
from framework import Response as AppResponse
from framework.errors import RemoteProtocolError
from framework.http11 import NEED_DATA, PAUSED, Driver, EndOfMessage, Request, Response
from framework.server import Server
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import raw_tls
from tests.hostile_cases import CASES, get, post

CHUNKED = b"Transfer-Encoding: chunked"
VALID = [
    get(),
    get(b"Accept: */*", b"User-Agent: fuzz/1.0", target=b"/a/b?c=d&e=%20"),
    get(b"Connection: close"),
    get(target=b"https://localhost/x"),
    get(target=b"*", method=b"OPTIONS"),
    b"GET /x HTTP/1.0\r\n\r\n",
    post(b"Content-Length: 5", body=b"hello"),
    post(b"Content-Length: 0"),
    post(CHUNKED, body=b"5\r\nhello\r\n0\r\n\r\n"),
    post(CHUNKED, body=b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"),
    post(b"Expect: 100-continue", b"Content-Length: 2", body=b"ok"),
    get(b"Upgrade: websocket", b"Connection: Upgrade"),
]
HOSTILE = [data for data, _ in CASES.values()]
ODD = b'\r\n\x00\x7f\t :,;"=()/\\?%.@\x80\xff0123456789abcdefABCDEF-'
ODD_LINES = [
    b"Content-Length: 3",
    b"Content-Length: 0",
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    CHUNKED,
    b"Transfer-Encoding: gzip",
    b"Host: other",
    b"Host:",
    b" folded",
    b"\tfolded",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Expect: 100-continue",
    b"X: \x7f",
    b"",
    b"0",
    b"ffffffffffffffff",
    b"GET / HTTP/1.1",
]


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = base
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 6))
        where = draw(st.integers(0, len(data)))
        if kind == 0:
            data = data[:where] + bytes([draw(st.sampled_from(ODD))]) + data[where:]
        elif kind == 1:
            data = data[:where] + bytes([draw(st.integers(0, 255))]) + data[where:]
        elif kind == 2:
            data = data[:where] + data[where + draw(st.integers(1, 8)) :]
        elif kind == 3:
            data = data[:where] + bytes([draw(st.sampled_from(ODD))]) + data[where + 1 :]
        elif kind == 4:
            lines = data.split(b"\r\n")
            lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(ODD_LINES)))
            data = b"\r\n".join(lines)
        elif kind == 5:
            lines = data.split(b"\r\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(1, len(lines))), lines[index])
            data = b"\r\n".join(lines)
        else:
            data = data[:where] + data[where:].replace(b"\r\n", b"\n", 1)
    return data


# Valid requests as they are, valid ones mutated, hostile ones mutated: a mix in which about
# a third of the streams are read without an error (see the counts the TLS run prints).
message = st.one_of(
    st.sampled_from(VALID),
    st.sampled_from(VALID).flatmap(mutated),
    st.sampled_from(HOSTILE).flatmap(mutated),
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """One to three messages, pipelined, perhaps cut short; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=200))
    data = b"".join(draw(st.lists(message, min_size=1, max_size=3)))
    if draw(st.integers(0, 3)) == 0:
        # Counted from the end: hypothesis favours small numbers, and a cut after the first
        # byte or two tells little.
        data = data[: len(data) - draw(st.integers(0, max(0, len(data) - 1)))]
    return data or b"x"


@st.composite
def pieces(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=4)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


ANSWER = Response(200, [(b"content-type", b"text/plain")])


def drive(plain: bool, data_pieces: list[bytes]) -> tuple[list[Any], int | None]:
    """Run a server driver over ``data_pieces``, answering each complete request; what it saw.

    Returns the events (heads as tuples) and the status hint of the error, if one came.
    """
    driver = Driver("server", plain=plain)
    seen: list[Any] = []
    for piece in [*data_pieces, b""]:
        try:
            driver.receive_data(piece)
            for _ in range(1000):
                event = driver.next_event()
                if event is NEED_DATA:
                    break
                if event is PAUSED:
                    if not driver.is_reusable:
                        break
                    driver.start_next_cycle()
                    continue
                seen.append(_summary(event))
                if type(event) is EndOfMessage:
                    driver.send_whole(ANSWER, b"ok")
                    if not driver.is_reusable:
                        return seen, None
                    driver.start_next_cycle()
                elif type(event).__name__ == "ConnectionClosed":
                    return seen, None
        except RemoteProtocolError as exc:
            # Broken for good: nothing more comes out.
            with pytest.raises(RemoteProtocolError):
                driver.next_event()
            return seen, exc.status_hint
    return seen, None


def _summary(event: Any) -> Any:
    if type(event) is Request:
        return (event.method, event.target, event.headers, event.http_version)
    return event


IN_MEMORY = settings(
    max_examples=600, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


@IN_MEMORY
@given(streams().flatmap(pieces))
def test_fuzz_driver_in_memory(data_pieces: list[bytes]) -> None:
    plain = drive(True, data_pieces)
    assert drive(False, data_pieces) == plain


# --- over TLS --------------------------------------------------------------------------------

TLS_CASES = 300
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ([^\r\n]*)\r\n")


@pytest.fixture(scope="module")
def fuzz_server(tls_files: TLSFiles) -> Iterator[Server]:
    async def handler(request: AppRequest) -> AppResponse:
        # The body is not read: a request cut short mid-body is answered, then closed.
        return AppResponse(b"ok")

    with serve_in_thread(handler, tls_files, keep_alive_timeout=0.2, head_timeout=0.2) as server:
        yield server


def responses_in(received: bytes) -> list[int]:
    """The statuses of the complete responses ``received`` holds; fails on anything else."""
    if not received:
        return []  # closed without an answer: an incomplete head timed out
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(received)
    conn.receive_data(b"")
    statuses = []
    while True:
        if conn.their_state is h11.MUST_CLOSE:
            # A response that closes: only the close may follow it.
            assert not conn.trailing_data[0], received[-200:]
            return statuses
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            if not conn.trailing_data[0]:
                return statuses
            conn.start_next_cycle()
        if conn.our_state is h11.IDLE:
            # What was asked does not matter (never HEAD in the corpus): GET frames alike.
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        event = conn.next_event()
        if type(event) is h11.Response:
            statuses.append(event.status_code)
        elif type(event) is h11.ConnectionClosed:
            return statuses
        elif event is h11.NEED_DATA:
            raise AssertionError(f"incomplete response: {received[-200:]!r}")


def generated(count: int) -> list[list[bytes]]:
    """``count`` cases drawn by hypothesis (the same every run), to be sent concurrently.

    The cases are run over TLS outside hypothesis: a server ends an incomplete head only at
    its once-a-second timeout sweep, so one connection after the other would take minutes.
    """
    cases: list[list[bytes]] = []

    @settings(
        max_examples=count, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(streams().flatmap(pieces))
    def collect(data_pieces: list[bytes]) -> None:
        cases.append(data_pieces)

    collect()
    return cases[:count]


def exchange(server: Server, tls_files: TLSFiles, data_pieces: list[bytes]) -> tuple[str, bytes]:
    """Send the pieces, read until the server closes: (how it closed, what it sent)."""
    with raw_tls(server, tls_files) as sock:
        received = b""
        try:
            for piece in data_pieces:
                sock.sendall(piece)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            # The server closed while we were still sending: it had read enough to answer,
            # and the kernel reset a connection with bytes unread. What it sent counts.
            return "reset while sending", received
        except ssl.SSLError as exc:
            return f"unclean: {exc!r}", received
    return "clean", received


@pytest.mark.slow
def test_fuzz_server_over_tls(
    fuzz_server: Server, tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="framework")
    loop = fuzz_server.loop
    tasks_before = asyncio.run_coroutine_threadsafe(_count_tasks(), loop).result(10)
    cases = generated(TLS_CASES)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda case: exchange(fuzz_server, tls_files, case), cases))
    elapsed = time.monotonic() - started
    tally: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for case, (close, received) in zip(cases, results, strict=True):
        tally[close] += 1
        assert close in ("clean", "reset while sending"), (close, case)
        answered = responses_in(received)
        statuses.update(answered)
        tally["no response"] += not answered
    # Every connection gone, no task left behind, nothing logged above INFO.
    for _ in range(500):
        if not fuzz_server.connections:
            break
        time.sleep(0.01)  # polling the server's own state, bounded: 5 s
    assert not fuzz_server.connections
    tasks_after = asyncio.run_coroutine_threadsafe(_count_tasks(), loop).result(10)
    assert tasks_after <= tasks_before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(cases) == TLS_CASES
    print(
        f"\nfuzz over TLS: {len(cases)} connections in {elapsed:.1f} s; closes {dict(tally)}; "
        f"responses by status {dict(sorted(statuses.items()))}"
    )


async def _count_tasks() -> int:
    return len(asyncio.all_tasks())
