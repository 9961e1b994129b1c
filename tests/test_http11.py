"""The HTTP/1.1 driver in both roles, joined in memory with no sockets."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from framework.errors import LocalProtocolError, RemoteProtocolError
from framework.http11 import (
    DONE,
    ERROR,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    SEND_RESPONSE,
    ConnectionClosed,
    Data,
    Driver,
    EndOfMessage,
    InformationalResponse,
    Request,
    Response,
    prepare,
)

# Every test runs on both paths: plain messages read and written by the driver, and h11 alone.
PLAIN = [True]


@pytest.fixture(autouse=True, params=[True, False], ids=["plain", "h11"])
def _path(request: pytest.FixtureRequest) -> None:
    PLAIN[0] = request.param


def make(role: Any, max_incomplete_event_size: int = 16 * 1024) -> Driver:
    return Driver(role, max_incomplete_event_size, plain=PLAIN[0])


def pair() -> tuple[Driver, Driver]:
    return make("client"), make("server")


def events(driver: Driver) -> list[Any]:
    """Every event the driver can give now, up to NEED_DATA or PAUSED (included)."""
    out = []
    for _ in range(100):
        event = driver.next_event()
        out.append(event)
        if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
            return out
    raise AssertionError("the driver never asked for more data")


def send_all(sender: Driver, receiver: Driver, *items: Any) -> list[Any]:
    data = b"".join(sender.send(item) for item in items)
    receiver.receive_data(data)
    return events(receiver)


def fields(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode()) for name, value in pairs]


def req(method: str, target: str, *headers: tuple[str, str]) -> Request:
    return Request(method.encode(), target.encode(), fields(*headers))


def resp(status: int, *headers: tuple[str, str]) -> Response:
    return Response(status, fields(*headers))


def get(target: str = "/", **extra: str) -> Request:
    return req("GET", target, ("Host", "localhost"), *extra.items())


def test_driver_request_response_round_trip() -> None:
    client, server = pair()
    got = send_all(client, server, get("/x?y=1", Accept="*/*"), EndOfMessage())
    request = got[0]
    assert type(request) is Request
    assert request.method == b"GET"
    assert request.target == b"/x?y=1"
    assert (b"accept", b"*/*") in request.headers
    assert type(got[1]) is EndOfMessage
    assert got[2] is NEED_DATA
    assert server.their_state is DONE
    assert server.our_state is SEND_RESPONSE

    got = send_all(
        server,
        client,
        resp(200, ("Content-Length", "5")),
        Data(b"hello"),
        EndOfMessage(),
    )
    assert [type(e) for e in got[:3]] == [Response, Data, EndOfMessage]
    assert got[0].status_code == 200
    assert got[1].data == b"hello"
    assert client.is_reusable
    assert server.is_reusable


def test_driver_keep_alive_serves_several_cycles() -> None:
    client, server = pair()
    for n in range(3):
        got = send_all(client, server, get(f"/{n}"), EndOfMessage())
        assert got[0].target == f"/{n}".encode()
        body = str(n).encode()
        got = send_all(
            server,
            client,
            resp(200, ("Content-Length", str(len(body)))),
            Data(body),
            EndOfMessage(),
        )
        assert got[1].data == body
        assert server.is_reusable
        assert client.is_reusable
        server.start_next_cycle()
        client.start_next_cycle()
        assert server.our_state is IDLE
        assert client.their_state is IDLE


def test_driver_connection_close_ends_reuse() -> None:
    client, server = pair()
    send_all(client, server, get(Connection="close"), EndOfMessage())
    send_all(
        server,
        client,
        resp(204),
        EndOfMessage(),
    )
    assert not server.is_reusable
    assert server.our_state is MUST_CLOSE


def test_driver_chunked_request_body() -> None:
    client, server = pair()
    head = req("POST", "/upload", ("Host", "localhost"), ("Transfer-Encoding", "chunked"))
    wire = client.send(head) + client.send(Data(b"abc")) + client.send(Data(b"de"))
    assert b"3\r\nabc\r\n" in wire
    wire += client.send(EndOfMessage())
    assert wire.endswith(b"0\r\n\r\n")
    server.receive_data(wire)
    got = events(server)
    assert type(got[0]) is Request
    assert b"".join(e.data for e in got if type(e) is Data) == b"abcde"
    assert type(got[-2]) is EndOfMessage


def test_driver_chunked_response_body() -> None:
    client, server = pair()
    send_all(client, server, get(), EndOfMessage())
    # No Content-Length on an HTTP/1.1 response: h11 chooses chunked framing.
    wire = server.send(resp(200))
    assert b"transfer-encoding: chunked" in wire.lower()
    for piece in (b"one ", b"two ", b"three"):
        wire += server.send(Data(piece))
    wire += server.send(EndOfMessage())
    client.receive_data(wire)
    got = events(client)
    assert b"".join(e.data for e in got if type(e) is Data) == b"one two three"
    assert client.is_reusable


def test_driver_content_length_request_body_split_across_reads() -> None:
    client, server = pair()
    head = req("POST", "/", ("Host", "h"), ("Content-Length", "6"))
    wire = client.send(head) + client.send(Data(b"abcdef")) + client.send(EndOfMessage())
    received = []
    for i in range(len(wire)):
        server.receive_data(wire[i : i + 1])
        received += [e for e in events(server) if e is not NEED_DATA]
    assert [type(e) for e in received][0] is Request
    assert b"".join(e.data for e in received if type(e) is Data) == b"abcdef"
    assert type(received[-1]) is EndOfMessage


def test_driver_100_continue_state() -> None:
    client, server = pair()
    head = req("POST", "/", ("Host", "h"), ("Content-Length", "3"), ("Expect", "100-continue"))
    server.receive_data(client.send(head))
    got = events(server)
    assert type(got[0]) is Request
    assert server.they_are_waiting_for_100_continue
    client.receive_data(server.send(InformationalResponse(100, [])))
    assert not server.they_are_waiting_for_100_continue
    informational = events(client)[0]
    assert type(informational) is InformationalResponse
    assert informational.status_code == 100
    got = send_all(client, server, Data(b"abc"), EndOfMessage())
    assert got[0].data == b"abc"


def test_driver_100_continue_cleared_by_answering_first() -> None:
    client, server = pair()
    head = req("POST", "/", ("Host", "h"), ("Content-Length", "3"), ("Expect", "100-continue"))
    server.receive_data(client.send(head))
    events(server)
    server.send(resp(413, ("Content-Length", "0")))
    assert not server.they_are_waiting_for_100_continue


def test_driver_pipelined_request_pauses_until_next_cycle() -> None:
    client, server = pair()
    wire = client.send(get("/1")) + client.send(EndOfMessage())
    second = b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    server.receive_data(wire + second)
    got = events(server)
    assert got[0].target == b"/1"
    assert got[-1] is PAUSED
    assert server.next_event() is PAUSED
    assert server.trailing_data[0] == second
    server.send(resp(200, ("Content-Length", "0")))
    server.send(EndOfMessage())
    server.start_next_cycle()
    assert events(server)[0].target == b"/2"


def test_driver_oversized_head_is_431() -> None:
    server = make("server", 1024)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 431
    assert isinstance(info.value.__cause__, h11.RemoteProtocolError)


def test_driver_bad_request_line_is_400() -> None:
    server = make("server")
    server.receive_data(b"THIS IS NOT HTTP\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 400


def test_driver_stays_broken_after_a_remote_error() -> None:
    server = make("server")
    server.receive_data(b"BAD\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    assert server.their_state is ERROR
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_driver_local_protocol_error_is_translated() -> None:
    with pytest.raises(LocalProtocolError) as info:
        make("server").send(Data(b"too early"))
    assert isinstance(info.value.__cause__, h11.LocalProtocolError)
    client, server = pair()
    send_all(client, server, get(), EndOfMessage())
    server.send(resp(200, ("Content-Length", "1")))
    with pytest.raises(LocalProtocolError):
        server.send(Data(b"too long"))


def test_driver_peer_close_is_connection_closed() -> None:
    client, server = pair()
    server.receive_data(b"")
    assert type(server.next_event()) is ConnectionClosed
    assert server.trailing_data == (b"", True)
    assert client.our_state is IDLE


def test_driver_send_failed_marks_it_broken() -> None:
    client, server = pair()
    send_all(client, server, get(), EndOfMessage())
    server.send_failed()
    assert server.our_state is ERROR
    assert not server.is_reusable


def test_driver_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="our_role must be 'client' or 'server', not 'proxy'"):
        Driver("proxy")  # type: ignore[arg-type]


def test_driver_repr_shows_states() -> None:
    assert (
        repr(Driver("server", plain=True))
        == "<Driver server plain our_state=IDLE their_state=IDLE>"
    )
    assert repr(Driver("client", plain=False)) == "<Driver client our_state=IDLE their_state=IDLE>"


def test_driver_oversized_head_arriving_whole_is_431() -> None:
    # h11 checks only heads still incomplete in its buffer; one read can hold a whole head.
    server = make("server", 1024)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 431


def test_driver_head_at_the_limit_is_accepted() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    server = make("server", len(head))
    server.receive_data(head)
    assert type(server.next_event()) is Request


def test_driver_oversized_response_head_is_refused_by_the_client() -> None:
    client = make("client", 512)
    client.send(get())
    client.send(EndOfMessage())
    client.receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"b" * 1000 + b"\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        client.next_event()


def served(request: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") -> Driver:
    server = make("server")
    server.receive_data(request)
    events(server)
    return server


def test_driver_send_whole_frames_like_h11() -> None:
    server = served()
    wire = server.send_whole(Response(200, [(b"content-type", b"text/plain")]), b"hello")
    client = make("client")
    client.send(get())
    client.send(EndOfMessage())
    client.receive_data(wire)
    got = events(client)
    assert got[0].status_code == 200
    assert (b"content-length", b"5") in got[0].headers
    assert got[1].data == b"hello"
    assert type(got[2]) is EndOfMessage
    assert server.is_reusable
    server.start_next_cycle()
    assert server.next_event() is NEED_DATA


def test_driver_send_whole_leaves_the_body_out_for_head() -> None:
    server = served(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire = server.send_whole(Response(200, []), b"hello")
    assert wire.endswith(b"content-length: 5\r\n\r\n")


def test_driver_send_whole_keeps_pipelined_requests() -> None:
    server = make("server")
    server.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert events(server)[-1] is PAUSED
    server.send_whole(Response(200, []), b"one")
    server.start_next_cycle()
    assert events(server)[0].target == b"/2"


@pytest.mark.parametrize(
    ("request_bytes", "headers", "status"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", [], 200),  # HTTP/1.0: h11 adds Connection: close
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", [], 200),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", [(b"connection", b"close")], 200),
    ],
)
def test_driver_send_whole_that_closes_is_not_reusable(
    request_bytes: bytes, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    server = served(request_bytes)
    wire = server.send_whole(Response(status, headers), b"bye")
    assert not server.is_reusable
    # Whoever framed it (h11, or the direct path), the client reads one response that closes.
    client = make("client")
    client.record_sent(prepare(req("GET", "/", ("Host", "h"))))
    client.receive_data(wire)
    response = client.next_event()
    assert type(response) is Response
    assert (b"connection", b"close") in response.headers
    assert client.next_event() == Data(b"bye")
    assert type(client.next_event()) is EndOfMessage
    assert client.their_state is MUST_CLOSE
    with pytest.raises(LocalProtocolError):  # and nothing more can be written on it
        server.send_whole(Response(200, []), b"more")


@pytest.mark.parametrize("status", [204, 304])
def test_driver_send_whole_without_body_status(status: int) -> None:
    server = served()
    wire = server.send_whole(Response(status, [(b"etag", b'"v1"')]), b"")
    assert wire.startswith(b"HTTP/1.1 %d " % status)
    # No Content-Length: forbidden on 204, and on 304 it would misdescribe the representation.
    assert b"content-length" not in wire.lower()
    assert wire.endswith(b'etag: "v1"\r\n\r\n')
    assert server.is_reusable


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-bad", b"a\r\nInjected: 1")],
        [(b"x-bad", b"a\nb")],
        [(b"bad name", b"v")],
        [(b"x-nul", b"a\x00b")],
    ],
)
def test_driver_send_whole_refuses_bad_headers(
    headers: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(LocalProtocolError):
        served().send_whole(Response(200, headers), b"")


# --- events of our own, prepared requests, checks -----------------------------------------


def test_driver_events_carry_no_h11_objects() -> None:
    client, server = pair()
    wire = client.send(req("POST", "/t", ("Host", "h"), ("Transfer-Encoding", "chunked")))
    wire += client.send(Data(b"abc")) + client.send(EndOfMessage(fields(("X-Sum", "1"))))
    server.receive_data(wire)
    got = events(server)
    assert got == [
        Request(b"POST", b"/t", [(b"host", b"h"), (b"transfer-encoding", b"chunked")]),
        Data(b"abc"),
        EndOfMessage([(b"x-sum", b"1")]),
        NEED_DATA,
    ]
    assert all(type(e).__module__ == "framework.http11.events" for e in got[:3])
    wire = server.send(InformationalResponse(103, fields(("Link", "</a>")))) + server.send(
        resp(200, ("Content-Length", "0"))
    )
    client.receive_data(wire + server.send(EndOfMessage()))
    got = events(client)
    assert got[0] == InformationalResponse(103, [(b"link", b"</a>")], b"")
    assert type(got[1]) is Response
    assert got[1].headers == [(b"content-length", b"0")]


def test_driver_prepared_request_matches_send_and_is_recorded() -> None:
    head = req("PUT", "/p", ("Host", "h"), ("Content-Length", "2"))
    prepared = prepare(head, b"ok")
    client = make("client")
    assert prepared.data == client.send(head) + client.send(Data(b"ok")) + client.send(
        EndOfMessage()
    )
    recorded, server = pair()
    recorded.record_sent(prepared)
    assert recorded.our_state is DONE
    server.receive_data(prepared.data)
    assert [type(e) for e in events(server)] == [Request, Data, EndOfMessage, type(NEED_DATA)]
    with pytest.raises(LocalProtocolError):  # one request at a time
        recorded.record_sent(prepared)


def test_prepare_refuses_a_body_its_head_does_not_frame() -> None:
    with pytest.raises(LocalProtocolError):
        prepare(req("POST", "/", ("Host", "h"), ("Content-Length", "1")), b"too long")
    with pytest.raises(LocalProtocolError):
        prepare(req("GET", "/", ("Host", "h"), ("Bad Name", "v")))


def test_check_refuses_bad_headers_before_sending() -> None:
    from framework.http11 import check

    head = req("GET", "/", ("Host", "h"), ("X-Ok", "1"))
    check(head)
    assert make("client").send(head).startswith(b"GET / HTTP/1.1\r\n")
    with pytest.raises(LocalProtocolError):
        check(req("GET", "/", ("Host", "h"), ("X-Bad", "a\r\nInjected: 1")))
