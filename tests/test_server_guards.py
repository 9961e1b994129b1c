"""``PeerLog``: lines about misbehaving peers are bounded per second."""

from __future__ import annotations

import logging

import pytest

from framework.server.guards import PeerLog


def test_peer_log_shows_a_few_lines_a_second_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("framework.server.guards.time.monotonic", lambda: clock[0])
    peers = PeerLog(per_second=3)
    with caplog.at_level(logging.DEBUG, logger="framework.server"):
        for i in range(100):
            peers.info("closing client %d", i)
        clock[0] += 1.0
        peers.info("closing client %d", 100)
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert info == [
        "closing client 0",
        "closing client 1",
        "closing client 2",
        "97 more lines like the above in the last second (at DEBUG)",
        "closing client 100",
    ]
    assert len(debug) == 97
