"""The h11 driver in both roles, joined in memory with no sockets, and FlowControl."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest

from framework.errors import LocalProtocolError, RemoteProtocolError
from framework.http11 import NEED_DATA, PAUSED, Driver, FlowControl


def pair() -> tuple[Driver, Driver]:
    return Driver("client"), Driver("server")


def events(driver: Driver) -> list[Any]:
    """Every event the driver can give now, up to NEED_DATA or PAUSED (included)."""
    out = []
    for _ in range(100):
        event = driver.next_event()
        out.append(event)
        if event is NEED_DATA or event is PAUSED or type(event) is h11.ConnectionClosed:
            return out
    raise AssertionError("the driver never asked for more data")


def send_all(sender: Driver, receiver: Driver, *items: Any) -> list[Any]:
    data = b"".join(sender.send(item) for item in items)
    receiver.receive_data(data)
    return events(receiver)


def get(target: str = "/", **extra: str) -> h11.Request:
    headers = [("Host", "localhost"), *extra.items()]
    return h11.Request(method="GET", target=target, headers=headers)


def test_driver_request_response_round_trip() -> None:
    client, server = pair()
    got = send_all(client, server, get("/x?y=1", Accept="*/*"), h11.EndOfMessage())
    request = got[0]
    assert type(request) is h11.Request
    assert request.method == b"GET"
    assert request.target == b"/x?y=1"
    assert (b"accept", b"*/*") in list(request.headers)
    assert type(got[1]) is h11.EndOfMessage
    assert got[2] is NEED_DATA
    assert server.their_state is h11.DONE
    assert server.our_state is h11.SEND_RESPONSE

    got = send_all(
        server,
        client,
        h11.Response(status_code=200, headers=[("Content-Length", "5")]),
        h11.Data(data=b"hello"),
        h11.EndOfMessage(),
    )
    assert [type(e) for e in got[:3]] == [h11.Response, h11.Data, h11.EndOfMessage]
    assert got[0].status_code == 200
    assert got[1].data == b"hello"
    assert client.is_reusable
    assert server.is_reusable


def test_driver_keep_alive_serves_several_cycles() -> None:
    client, server = pair()
    for n in range(3):
        got = send_all(client, server, get(f"/{n}"), h11.EndOfMessage())
        assert got[0].target == f"/{n}".encode()
        body = str(n).encode()
        got = send_all(
            server,
            client,
            h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )
        assert got[1].data == body
        assert server.is_reusable
        assert client.is_reusable
        server.start_next_cycle()
        client.start_next_cycle()
        assert server.our_state is h11.IDLE
        assert client.their_state is h11.IDLE


def test_driver_connection_close_ends_reuse() -> None:
    client, server = pair()
    send_all(client, server, get(Connection="close"), h11.EndOfMessage())
    send_all(
        server,
        client,
        h11.Response(status_code=204, headers=[]),
        h11.EndOfMessage(),
    )
    assert not server.is_reusable
    assert server.our_state is h11.MUST_CLOSE


def test_driver_chunked_request_body() -> None:
    client, server = pair()
    head = h11.Request(
        method="POST",
        target="/upload",
        headers=[("Host", "localhost"), ("Transfer-Encoding", "chunked")],
    )
    wire = (
        client.send(head) + client.send(h11.Data(data=b"abc")) + client.send(h11.Data(data=b"de"))
    )
    assert b"3\r\nabc\r\n" in wire
    wire += client.send(h11.EndOfMessage())
    assert wire.endswith(b"0\r\n\r\n")
    server.receive_data(wire)
    got = events(server)
    assert type(got[0]) is h11.Request
    assert b"".join(e.data for e in got if type(e) is h11.Data) == b"abcde"
    assert type(got[-2]) is h11.EndOfMessage


def test_driver_chunked_response_body() -> None:
    client, server = pair()
    send_all(client, server, get(), h11.EndOfMessage())
    # No Content-Length on an HTTP/1.1 response: h11 chooses chunked framing.
    wire = server.send(h11.Response(status_code=200, headers=[]))
    assert b"transfer-encoding: chunked" in wire.lower()
    for piece in (b"one ", b"two ", b"three"):
        wire += server.send(h11.Data(data=piece))
    wire += server.send(h11.EndOfMessage())
    client.receive_data(wire)
    got = events(client)
    assert b"".join(e.data for e in got if type(e) is h11.Data) == b"one two three"
    assert client.is_reusable


def test_driver_content_length_request_body_split_across_reads() -> None:
    client, server = pair()
    head = h11.Request(method="POST", target="/", headers=[("Host", "h"), ("Content-Length", "6")])
    wire = (
        client.send(head) + client.send(h11.Data(data=b"abcdef")) + client.send(h11.EndOfMessage())
    )
    received = []
    for i in range(len(wire)):
        server.receive_data(wire[i : i + 1])
        received += [e for e in events(server) if e is not NEED_DATA]
    assert [type(e) for e in received][0] is h11.Request
    assert b"".join(e.data for e in received if type(e) is h11.Data) == b"abcdef"
    assert type(received[-1]) is h11.EndOfMessage


def test_driver_100_continue_state() -> None:
    client, server = pair()
    head = h11.Request(
        method="POST",
        target="/",
        headers=[("Host", "h"), ("Content-Length", "3"), ("Expect", "100-continue")],
    )
    server.receive_data(client.send(head))
    got = events(server)
    assert type(got[0]) is h11.Request
    assert server.they_are_waiting_for_100_continue
    client.receive_data(server.send(h11.InformationalResponse(status_code=100, headers=[])))
    assert not server.they_are_waiting_for_100_continue
    informational = events(client)[0]
    assert type(informational) is h11.InformationalResponse
    assert informational.status_code == 100
    got = send_all(client, server, h11.Data(data=b"abc"), h11.EndOfMessage())
    assert got[0].data == b"abc"


def test_driver_100_continue_cleared_by_answering_first() -> None:
    client, server = pair()
    head = h11.Request(
        method="POST",
        target="/",
        headers=[("Host", "h"), ("Content-Length", "3"), ("Expect", "100-continue")],
    )
    server.receive_data(client.send(head))
    events(server)
    server.send(h11.Response(status_code=413, headers=[("Content-Length", "0")]))
    assert not server.they_are_waiting_for_100_continue


def test_driver_pipelined_request_pauses_until_next_cycle() -> None:
    client, server = pair()
    wire = client.send(get("/1")) + client.send(h11.EndOfMessage())
    second = b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    server.receive_data(wire + second)
    got = events(server)
    assert got[0].target == b"/1"
    assert got[-1] is PAUSED
    assert server.next_event() is PAUSED
    assert server.trailing_data[0] == second
    server.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
    server.send(h11.EndOfMessage())
    server.start_next_cycle()
    assert events(server)[0].target == b"/2"


def test_driver_oversized_head_is_431() -> None:
    server = Driver("server", max_incomplete_event_size=1024)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 431
    assert isinstance(info.value.__cause__, h11.RemoteProtocolError)


def test_driver_bad_request_line_is_400() -> None:
    server = Driver("server")
    server.receive_data(b"THIS IS NOT HTTP\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 400


def test_driver_stays_broken_after_a_remote_error() -> None:
    server = Driver("server")
    server.receive_data(b"BAD\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    assert server.their_state is h11.ERROR
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_driver_local_protocol_error_is_translated() -> None:
    with pytest.raises(LocalProtocolError) as info:
        Driver("server").send(h11.Data(data=b"too early"))
    assert isinstance(info.value.__cause__, h11.LocalProtocolError)
    client, server = pair()
    send_all(client, server, get(), h11.EndOfMessage())
    server.send(h11.Response(status_code=200, headers=[("Content-Length", "1")]))
    with pytest.raises(LocalProtocolError):
        server.send(h11.Data(data=b"too long"))


def test_driver_peer_close_is_connection_closed() -> None:
    client, server = pair()
    server.receive_data(b"")
    assert type(server.next_event()) is h11.ConnectionClosed
    assert server.trailing_data == (b"", True)
    assert client.our_state is h11.IDLE


def test_driver_send_failed_marks_it_broken() -> None:
    client, server = pair()
    send_all(client, server, get(), h11.EndOfMessage())
    server.send_failed()
    assert server.our_state is h11.ERROR
    assert not server.is_reusable


def test_driver_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="our_role must be 'client' or 'server', not 'proxy'"):
        Driver("proxy")  # type: ignore[arg-type]


def test_driver_repr_shows_states() -> None:
    assert repr(Driver("server")) == "<Driver server our_state=IDLE their_state=IDLE>"


# --- FlowControl ---------------------------------------------------------------------------


class FakeTransport:
    """Counts pause_reading/resume_reading calls; nothing else is needed by FlowControl."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def make_flow() -> tuple[FlowControl, FakeTransport]:
    transport = FakeTransport()
    return FlowControl(transport), transport  # type: ignore[arg-type]


def test_flow_control_read_pause_and_resume_are_idempotent() -> None:
    flow, transport = make_flow()
    flow.resume_reading()
    assert transport.calls == []
    flow.pause_reading()
    flow.pause_reading()
    assert flow.is_read_paused
    flow.resume_reading()
    flow.resume_reading()
    assert not flow.is_read_paused
    assert transport.calls == ["pause", "resume"]


def test_flow_control_read_calls_stop_after_connection_lost() -> None:
    flow, transport = make_flow()
    flow.connection_lost(None)
    flow.pause_reading()
    flow.resume_reading()
    assert transport.calls == []


def test_flow_control_drain_returns_at_once_when_not_paused() -> None:
    flow, _ = make_flow()

    async def run() -> None:
        await asyncio.wait_for(flow.drain(), 1)

    asyncio.run(run())
    assert not flow.is_write_paused


def test_flow_control_drain_waits_for_resume_writing() -> None:
    flow, _ = make_flow()

    async def run() -> None:
        flow.pause_writing()
        assert flow.is_write_paused
        waiters = [asyncio.ensure_future(flow.drain()) for _ in range(2)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        flow.resume_writing()
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert not flow.is_write_paused

    asyncio.run(run())


def test_flow_control_cancelled_drain_leaves_others_waiting() -> None:
    flow, _ = make_flow()

    async def run() -> None:
        flow.pause_writing()
        first = asyncio.ensure_future(flow.drain())
        second = asyncio.ensure_future(flow.drain())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        assert first.cancelled()
        assert not second.done()
        flow.resume_writing()
        await asyncio.wait_for(second, 1)

    asyncio.run(run())


def test_flow_control_connection_lost_wakes_a_waiting_writer() -> None:
    flow, _ = make_flow()

    async def run() -> None:
        flow.pause_writing()
        waiter = asyncio.ensure_future(flow.drain())
        await asyncio.sleep(0)
        flow.connection_lost(None)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(waiter, 1)
        with pytest.raises(ConnectionResetError):
            await flow.drain()

    asyncio.run(run())


def test_flow_control_connection_lost_passes_the_error_on() -> None:
    flow, _ = make_flow()
    error = BrokenPipeError("gone")

    async def run() -> None:
        flow.pause_writing()
        waiter = asyncio.ensure_future(flow.drain())
        await asyncio.sleep(0)
        flow.connection_lost(error)
        with pytest.raises(BrokenPipeError):
            await asyncio.wait_for(waiter, 1)

    asyncio.run(run())


def test_flow_control_repr_shows_state() -> None:
    flow, _ = make_flow()
    flow.pause_writing()
    assert repr(flow) == "<FlowControl write_paused=True read_paused=False closed=False>"


def test_driver_oversized_head_arriving_whole_is_431() -> None:
    # h11 checks only heads still incomplete in its buffer; one read can hold a whole head.
    server = Driver("server", max_incomplete_event_size=1024)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 431


def test_driver_head_at_the_limit_is_accepted() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    server = Driver("server", max_incomplete_event_size=len(head))
    server.receive_data(head)
    assert type(server.next_event()) is h11.Request


def test_driver_oversized_response_head_is_refused_by_the_client() -> None:
    client = Driver("client", max_incomplete_event_size=512)
    client.send(get())
    client.send(h11.EndOfMessage())
    client.receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"b" * 1000 + b"\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(RemoteProtocolError):
        client.next_event()


def served(request: bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") -> Driver:
    server = Driver("server")
    server.receive_data(request)
    events(server)
    return server


def test_driver_send_whole_response_frames_like_h11() -> None:
    server = served()
    wire = server.send_whole_response(200, [(b"content-type", b"text/plain")], b"hello")
    client = Driver("client")
    client.send(get())
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    got = events(client)
    assert got[0].status_code == 200
    assert (b"content-length", b"5") in list(got[0].headers)
    assert got[1].data == b"hello"
    assert type(got[2]) is h11.EndOfMessage
    assert server.is_reusable
    server.start_next_cycle()
    assert server.next_event() is NEED_DATA


def test_driver_send_whole_response_leaves_the_body_out_for_head() -> None:
    server = served(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    wire = server.send_whole_response(200, [], b"hello")
    assert wire.endswith(b"content-length: 5\r\n\r\n")


def test_driver_send_whole_response_keeps_pipelined_requests() -> None:
    server = Driver("server")
    server.receive_data(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert events(server)[-1] is PAUSED
    server.send_whole_response(200, [], b"one")
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
def test_driver_send_whole_response_that_closes_is_not_reusable(
    request_bytes: bytes, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    server = served(request_bytes)
    wire = server.send_whole_response(status, headers, b"bye")
    assert not server.is_reusable
    # Whoever framed it (h11, or the direct path), the client reads one response that closes.
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    response = client.next_event()
    assert type(response) is h11.Response
    assert (b"connection", b"close") in list(response.headers)
    assert client.next_event() == h11.Data(data=b"bye")
    assert type(client.next_event()) is h11.EndOfMessage
    assert client.their_state is h11.MUST_CLOSE
    with pytest.raises(LocalProtocolError):  # and nothing more can be written on it
        server.send_whole_response(200, [], b"more")


def test_driver_send_whole_response_without_body_status() -> None:
    server = served()
    wire = server.send_whole_response(204, [], b"")
    assert wire.startswith(b"HTTP/1.1 204 ")
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
def test_driver_send_whole_response_refuses_bad_headers(
    headers: list[tuple[bytes, bytes]],
) -> None:
    with pytest.raises(LocalProtocolError):
        served().send_whole_response(200, headers, b"")
