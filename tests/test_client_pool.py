"""``ConnectionPool``'s state machine against a fake connector: no sockets, no TLS, no timers.

Each connection is a real ``ClientConnection`` on a ``FakeTransport`` that records what the
client writes and answers it on the loop's next turn, as a server on the other end of a socket
would. Tests step the loop with ``run_ready()``, which lets every ready task run to its next
wait; nothing waits on a clock but the pool timeouts (a millisecond at most).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from framework.client.connection import CLOSED, IDLE, ClientConnection, Origin
from framework.client.connector import Connector
from framework.client.pool import ConnectionPool
from framework.client.request import (
    NO_BODY,
    ClientRequest,
    Timeout,
    build_request,
    split_url,
)
from framework.errors import ClientError, PoolTimeout, ServerDisconnectedError

T = TypeVar("T")

A = Origin("http", "a.test", 80)
B = Origin("http", "b.test", 80)
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
NO_TIMEOUTS = Timeout.of(None)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


async def run_ready() -> None:
    """Let every task that is ready run until it waits again.

    Callbacks scheduled before this one run first (the loop's ready queue is FIFO), so each
    task started or woken before the call has taken its next step when it returns.
    """
    loop = asyncio.get_running_loop()
    turned = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned


# --- the fakes ----------------------------------------------------------------------------------


def answer_ok(transport: FakeTransport, data: bytes) -> None:
    transport.reply(OK)


def hang_up(transport: FakeTransport, data: bytes) -> None:
    """The server had closed the connection: the request is never answered."""
    transport.peer_closes()


class FakeTransport(asyncio.Transport):
    """A transport over nothing: it records writes and answers each with ``respond``."""

    def __init__(
        self,
        protocol: ClientConnection,
        respond: Callable[[FakeTransport, bytes], None],
    ) -> None:
        super().__init__()
        self.protocol = protocol
        self.respond = respond
        self.written: list[bytes] = []
        self.closing = False
        self.aborted = False
        #: Done once the connection has been told of its loss.
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))
        self.respond(self, bytes(data))

    def reply(self, data: bytes) -> None:
        """The server sends ``data``, arriving on the loop's next turn."""
        asyncio.get_running_loop().call_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if not self.closing:
            self.protocol.data_received(data)

    def peer_closes(self) -> None:
        """The server closes its end on the loop's next turn: end of file, then the loss."""
        asyncio.get_running_loop().call_soon(self._peer_closed)

    def _peer_closed(self) -> None:
        if not self.closing:
            self.closing = True
            self.protocol.eof_received()
            self._end()

    def _end(self) -> None:
        self.protocol.connection_lost(None)
        self.lost.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self._end)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class FakeConnector(Connector):
    """Opens ``ClientConnection``s on fake transports, in the order asked, without waiting."""

    def __init__(self) -> None:
        super().__init__(None)
        self.opened: list[ClientConnection] = []
        self.respond: Callable[[FakeTransport, bytes], None] = answer_ok

    async def connect(
        self,
        origin: Origin,
        connect_timeout: float | None,
        *,
        on_lost: Callable[[ClientConnection], None],
        keep_alive_expiry: float,
    ) -> ClientConnection:
        loop = asyncio.get_running_loop()
        conn = ClientConnection(origin, loop, on_lost, keep_alive_expiry, 16 * 1024)
        conn.connection_made(FakeTransport(conn, self.respond))
        self.opened.append(conn)
        return conn


def transport_of(conn: ClientConnection) -> FakeTransport:
    assert isinstance(conn.transport, FakeTransport)
    return conn.transport


def request(
    method: str, origin: Origin, headers: list[tuple[bytes, bytes]] | None = None
) -> ClientRequest:
    target = split_url(f"{origin.scheme}://{origin.host}/")
    target.headers = [(b"host", target.host_header)]
    return build_request(method, target, [], headers, NO_BODY)


def make_pool(**bounds: int) -> tuple[ConnectionPool, FakeConnector]:
    connector = FakeConnector()
    return ConnectionPool(connector, keep_alive_expiry=60.0, **bounds), connector


async def send(pool: ConnectionPool, origin: Origin, method: str = "GET") -> ClientConnection:
    return await pool.send(request(method, origin), NO_TIMEOUTS, None)


def done_with(pool: ConnectionPool, conn: ClientConnection) -> None:
    """Read the (whole, already received) body and give the connection back."""
    assert conn.head is not None
    assert conn.head.status_code == 200
    assert conn.take_chunks() == [b"ok"]
    pool.release(conn)


def counts(pool: ConnectionPool) -> tuple[int, int, int, int]:
    return pool.num_connections, pool.num_active, pool.num_idle, pool.num_waiting


# --- taking and giving back ---------------------------------------------------------------------


def test_pool_send_opens_then_reuses_one_connection() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        first = await send(pool, A)
        assert counts(pool) == (1, 1, 0, 0)
        done_with(pool, first)
        assert counts(pool) == (1, 0, 1, 0)
        assert first.state is IDLE
        again = await send(pool, A)
        assert again is first
        assert connector.opened == [first]
        assert first.requests == 2
        assert transport_of(first).written[0] == transport_of(first).written[1]
        assert transport_of(first).written[0].startswith(b"GET / HTTP/1.1\r\nhost: a.test\r\n")
        done_with(pool, again)
        assert counts(pool) == (1, 0, 1, 0)

    run(main)


def test_pool_acquire_and_release_without_a_request() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        conn = await pool.acquire(A, pool_timeout=None, connect_timeout=None)
        assert counts(pool) == (1, 1, 0, 0)
        # No response was read: the connection cannot carry another request and is closed.
        pool.release(conn)
        assert counts(pool) == (0, 0, 0, 0)
        assert transport_of(conn).aborted

    run(main)


def test_pool_hands_out_the_most_recently_used_idle_connection() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        one, two = await asyncio.gather(send(pool, A), send(pool, A))
        assert connector.opened == [one, two]
        done_with(pool, one)
        done_with(pool, two)
        assert counts(pool) == (2, 0, 2, 0)
        assert await send(pool, A) is two
        assert await send(pool, A) is one
        assert counts(pool) == (2, 2, 0, 0)

    run(main)


def test_pool_forgets_a_connection_the_server_closed_while_idle() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        first = await send(pool, A)
        done_with(pool, first)
        assert counts(pool) == (1, 0, 1, 0)
        transport_of(first).peer_closes()
        await transport_of(first).lost
        assert counts(pool) == (0, 0, 0, 0)
        second = await send(pool, A)
        assert second is not first
        assert connector.opened == [first, second]

    run(main)


# --- bounds and waiting -------------------------------------------------------------------------


def test_pool_per_origin_bound_queues_requests_and_serves_them_in_order() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections_per_host=1)
        busy = await send(pool, A)
        second = asyncio.create_task(send(pool, A))
        third = asyncio.create_task(send(pool, A))
        await run_ready()
        assert counts(pool) == (1, 1, 0, 2)
        done_with(pool, busy)  # handed straight to the first in the queue
        assert counts(pool) == (1, 1, 0, 1)
        assert await second is busy
        assert not third.done()
        done_with(pool, busy)
        assert await third is busy
        assert connector.opened == [busy]
        done_with(pool, busy)
        assert counts(pool) == (1, 0, 1, 0)

    run(main)


def test_pool_total_bound_evicts_an_idle_connection_of_another_origin() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections=1)
        to_a = await send(pool, A)
        done_with(pool, to_a)
        to_b = await send(pool, B)
        assert connector.opened == [to_a, to_b]
        assert transport_of(to_a).closing
        assert counts(pool) == (1, 1, 0, 0)

    run(main)


def test_pool_total_bound_serves_other_origins_in_order_once_there_is_room() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections=1)
        to_a = await send(pool, A)
        first_b = asyncio.create_task(send(pool, B))
        second_b = asyncio.create_task(send(pool, B))
        await run_ready()
        assert counts(pool) == (1, 1, 0, 2)
        # A's connection goes idle, is evicted for the first B request, which opens its own.
        done_with(pool, to_a)
        conn_b = await first_b
        assert connector.opened == [to_a, conn_b]
        assert transport_of(to_a).closing
        assert not second_b.done()
        assert counts(pool) == (1, 1, 0, 1)
        done_with(pool, conn_b)
        assert await second_b is conn_b
        assert len(connector.opened) == 2

    run(main)


def test_pool_timeout_when_no_connection_becomes_free() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections_per_host=1)
        busy = await send(pool, A)
        with pytest.raises(PoolTimeout, match="no connection to http://a.test:80 became free"):
            await pool.send(request("GET", A), Timeout(pool=0.001), None)
        assert counts(pool) == (1, 1, 0, 0)
        done_with(pool, busy)
        assert await send(pool, A) is busy

    run(main)


def test_pool_timeout_counts_against_the_total_deadline() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections_per_host=1)
        await send(pool, A)
        already_passed = asyncio.get_running_loop().time()
        with pytest.raises(PoolTimeout, match="within 0.0 s"):
            await pool.send(request("GET", A), Timeout(pool=60), already_passed)

    run(main)


# --- replaying on a dead reused connection ------------------------------------------------------


def test_pool_replays_once_when_a_reused_connection_was_dead() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        stale = await send(pool, A)
        done_with(pool, stale)
        transport_of(stale).respond = hang_up
        fresh = await send(pool, A)
        assert fresh is not stale
        assert connector.opened == [stale, fresh]
        assert transport_of(fresh).written == transport_of(stale).written[1:]
        done_with(pool, fresh)
        assert counts(pool) == (1, 0, 1, 0)

    run(main)


def test_pool_does_not_replay_once_the_response_began() -> None:
    def half_a_head_then_close(transport: FakeTransport, data: bytes) -> None:
        transport.reply(b"HTTP/1.1 200 OK\r\n")
        transport.peer_closes()

    async def main() -> None:
        pool, connector = make_pool()
        stale = await send(pool, A)
        done_with(pool, stale)
        transport_of(stale).respond = half_a_head_then_close
        with pytest.raises(ServerDisconnectedError, match="before the response was complete"):
            await send(pool, A)
        assert connector.opened == [stale]
        assert counts(pool) == (0, 0, 0, 0)

    run(main)


def test_pool_does_not_replay_twice() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        stale = await send(pool, A)
        done_with(pool, stale)
        transport_of(stale).respond = hang_up
        connector.respond = hang_up  # the new connection is refused the same way
        with pytest.raises(ServerDisconnectedError, match="without sending a response"):
            await send(pool, A)
        assert len(connector.opened) == 2
        assert counts(pool) == (0, 0, 0, 0)

    run(main)


def test_pool_never_replays_a_post_without_an_idempotency_key() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        stale = await send(pool, A)
        done_with(pool, stale)
        transport_of(stale).respond = hang_up
        with pytest.raises(ServerDisconnectedError):
            await send(pool, A, "POST")
        assert connector.opened == [stale]
        assert counts(pool) == (0, 0, 0, 0)

    run(main)


def test_pool_replays_a_post_with_an_idempotency_key() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        stale = await send(pool, A)
        done_with(pool, stale)
        transport_of(stale).respond = hang_up
        keyed = request("POST", A, [(b"idempotency-key", b"7")])
        fresh = await pool.send(keyed, NO_TIMEOUTS, None)
        assert connector.opened == [stale, fresh]

    run(main)


def test_pool_does_not_replay_on_a_new_connection() -> None:
    async def main() -> None:
        pool, connector = make_pool()
        connector.respond = hang_up
        with pytest.raises(ServerDisconnectedError):
            await send(pool, A)
        assert len(connector.opened) == 1

    run(main)


# --- closing ------------------------------------------------------------------------------------


def test_pool_aclose_fails_waiters_and_later_requests() -> None:
    async def main() -> None:
        pool, connector = make_pool(max_connections_per_host=1)
        busy = await send(pool, A)
        waiting = asyncio.create_task(send(pool, A))
        await run_ready()
        assert pool.num_waiting == 1
        await pool.aclose()
        with pytest.raises(ClientError, match="the client was closed"):
            await waiting
        assert transport_of(busy).aborted
        assert busy.state is CLOSED
        with pytest.raises(ClientError, match="the client is closed; make a new one"):
            await send(pool, A)
        assert repr(pool).startswith("<ConnectionPool [CLOSED")

    run(main)
