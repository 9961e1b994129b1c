"""The asyncio adapter: FlowControl and BodyQueue against a transport that records calls."""

from __future__ import annotations

import asyncio

import pytest

from framework.transport import BodyQueue, FlowControl


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


# --- BodyQueue -------------------------------------------------------------------------------


def test_body_queue_pauses_above_high_water_and_resumes_as_read() -> None:
    flow, transport = make_flow()
    queue = BodyQueue(flow, high_water=10)
    queue.feed(b"x" * 6)
    assert transport.calls == []
    queue.feed(b"y" * 6)
    assert transport.calls == ["pause"]
    assert queue.buffered == 12
    assert queue.pop() == b"x" * 6
    assert transport.calls == ["pause", "resume"]
    assert queue.pop() == b"y" * 6
    assert queue.pop() is None
    queue.finish()
    assert queue.pop() == b""


def test_body_queue_take_all_and_clear() -> None:
    flow, transport = make_flow()
    queue = BodyQueue(flow, high_water=4)
    for piece in (b"ab", b"cd", b"ef"):
        queue.feed(piece)
    assert queue.take_all() == [b"ab", b"cd", b"ef"]
    assert transport.calls == ["pause", "resume"]
    assert queue.buffered == 0
    queue.finish()
    queue.clear()
    assert not queue.is_complete
    assert queue.pop() is None


def test_body_queue_read_chunk_waits_and_calls_on_wait_first() -> None:
    flow, _ = make_flow()
    waited: list[int] = []

    async def run() -> list[bytes]:
        queue = BodyQueue(flow, on_wait=lambda: waited.append(queue.buffered))
        reader = asyncio.ensure_future(_read_all(queue))
        await asyncio.sleep(0)
        assert waited == [0]  # the reader waits, and said so before waiting
        queue.feed(b"one")
        queue.feed(b"two")
        queue.finish()
        return await asyncio.wait_for(reader, 1)

    assert asyncio.run(run()) == [b"one", b"two"]


async def _read_all(queue: BodyQueue) -> list[bytes]:
    out = []
    while chunk := await queue.read_chunk():
        out.append(chunk)
    return out


def test_body_queue_lost_connection_fails_a_waiting_reader_after_the_rest() -> None:
    flow, _ = make_flow()

    async def run() -> None:
        queue = BodyQueue(flow)
        queue.feed(b"kept")
        reader = asyncio.ensure_future(_read_all(queue))
        await asyncio.sleep(0)
        queue.lose("gone before the end")
        with pytest.raises(ConnectionResetError, match="gone before the end"):
            await asyncio.wait_for(reader, 1)
        assert queue.pop() is None

    asyncio.run(run())
