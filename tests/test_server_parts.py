"""The server's parts that need no socket: ServerConfig and the per-connection deadlines."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from framework import Response, Server, ServerConfig, limits
from framework.messages import Request
from framework.server import timeouts


async def _handler(request: Request) -> Response:
    return Response("ok")


def test_server_config_defaults_are_the_limits() -> None:
    config = ServerConfig()
    assert config.keep_alive_timeout == limits.KEEP_ALIVE_TIMEOUT
    assert config.head_timeout == limits.REQUEST_HEAD_TIMEOUT
    assert config.tls_handshake_timeout == limits.TLS_HANDSHAKE_TIMEOUT
    assert config.max_header_bytes == limits.MAX_HEADER_BYTES
    assert config.backlog == limits.BACKLOG
    assert config.access_log is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backlog = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [("keep_alive_timeout", 0), ("head_timeout", -1.0), ("max_header_bytes", 0), ("backlog", 1.5)],
)
def test_server_config_refuses_nonsense(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: value})


def test_server_keywords_set_config_fields() -> None:
    base = ServerConfig(head_timeout=3.0)
    server = Server(_handler, config=base, keep_alive_timeout=1.5, access_log=True)
    assert server.config == ServerConfig(head_timeout=3.0, keep_alive_timeout=1.5, access_log=True)
    with pytest.raises(TypeError, match="unexpected keyword argument.*keep_alive"):
        Server(_handler, keep_alive=3)  # type: ignore[arg-type]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


class _Conn:
    def __init__(self) -> None:
        self.phase = timeouts.IDLE
        self.deadline: float | None = None
        self.expired = 0

    def expire(self) -> None:
        self.expired += 1
        self.deadline = None  # as a closing connection does


def test_deadlines_by_phase_and_sweep() -> None:
    clock = _Clock()
    deadlines = timeouts.Deadlines(clock, {timeouts.IDLE: 5.0, timeouts.HEAD: 2.0})  # type: ignore[arg-type]
    idle, head, busy = _Conn(), _Conn(), _Conn()
    deadlines.enter(idle, timeouts.IDLE)
    deadlines.enter(head, timeouts.HEAD)
    deadlines.enter(busy, timeouts.BUSY)
    assert (idle.deadline, head.deadline, busy.deadline) == (105.0, 102.0, None)
    clock.now = 102.0  # exactly at the deadline: not yet
    deadlines.sweep([idle, head, busy])
    assert (idle.expired, head.expired, busy.expired) == (0, 0, 0)
    clock.now = 103.0
    deadlines.sweep([idle, head, busy])
    assert (idle.expired, head.expired, busy.expired) == (0, 1, 0)
    clock.now = 1000.0
    deadlines.sweep([idle, head, busy])
    assert (idle.expired, head.expired, busy.expired) == (1, 1, 0)
    assert deadlines.limit(timeouts.BUSY) is None
