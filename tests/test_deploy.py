"""The process model's parts in one process: addresses, socket set-up, systemd's variables.

Real sockets throughout: the notifier sends to a datagram socket bound by the test, the
listeners are bound on loopback and connected to.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from framework.deploy.sockets import (
    REUSE_PORT,
    ListenPlan,
    all_sockets,
    describe,
    open_listeners,
    parse_bind,
    systemd_sockets,
    unix_socket,
)
from framework.deploy.systemd import Notifier
from framework.deploy.worker import status_line
from framework.errors import FrameworkError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("[::1]:8443", ("::1", 8443)),
        ("localhost:0", ("localhost", 0)),
        (":8443", ("0.0.0.0", 8443)),
        ("[::]:443", ("::", 443)),
    ],
)
def test_bind_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8443", "use HOST:PORT"),
        ("::1:8443", "brackets around an IPv6 address"),
        ("[::1]8443", "use HOST:PORT"),
        ("host:http", "the port must be a number"),
        ("host:70000", "0-65535"),
    ],
)
def test_bad_bind_addresses_say_the_forms(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bind(text)


def test_listeners_per_slot_share_one_port() -> None:
    per_slot, shared = open_listeners(ListenPlan(tcp=[("127.0.0.1", 0)]), 3)
    try:
        if REUSE_PORT:
            assert not shared
            ports = {slot[0].getsockname()[1] for slot in per_slot}
            assert len(ports) == 1
            assert all(len(slot) == 1 for slot in per_slot)
        else:
            assert len(shared) == 1
        for sock in all_sockets(per_slot, shared):
            socket.create_connection(sock.getsockname()[:2], timeout=5).close()
    finally:
        for sock in all_sockets(per_slot, shared):
            sock.close()


def test_a_port_in_use_is_one_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(FrameworkError, match=f"127.0.0.1:{port}: the address is already in"):
            open_listeners(ListenPlan(tcp=[("127.0.0.1", port)]))


def test_unix_socket_replaces_a_stale_file_but_not_a_live_server(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    first = unix_socket(str(path), mode=0o600)
    with pytest.raises(FrameworkError, match="a server is already listening there"):
        unix_socket(str(path))
    first.close()  # the file stays behind, as after a crash
    second = unix_socket(str(path))
    try:
        assert describe(second) == f"unix:{path}"
        assert oct(path.stat().st_mode & 0o777) == oct(0o660)
    finally:
        second.close()
    path.unlink()
    path.write_text("not a socket")
    with pytest.raises(FrameworkError, match="is not a socket"):
        unix_socket(str(path))


def test_systemd_sockets_need_this_pid_and_are_consumed() -> None:
    env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "https"}
    assert systemd_sockets(env) == []
    assert env == {}  # not left for a child to take


def test_notifier_sends_sd_notify_lines(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.settimeout(5)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000", "OTHER": "kept"}
        notifier = Notifier.from_environ(env)
        assert notifier is not None
        assert env == {"OTHER": "kept"}
        assert notifier.watchdog_interval == 1.5
        notifier.ready(status_line(2, 3, 4))
        assert manager.recv(4096) == b"READY=1\nSTATUS=2 workers, 3 connections, 4 requests served"
        notifier.reloading()
        lines = manager.recv(4096).decode().splitlines()
        assert lines[0] == "RELOADING=1"
        assert lines[1].startswith("MONOTONIC_USEC=")
        assert int(lines[1].partition("=")[2]) > 0
        notifier.stopping()
        assert manager.recv(4096).startswith(b"STOPPING=1\n")
        notifier.watchdog()
        assert manager.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_notifier_abstract_address_and_absent_manager() -> None:
    name = f"framework-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        manager.settimeout(5)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        assert notifier.status("up")
        assert manager.recv(100) == b"STATUS=up"
    # The manager is gone: sending fails quietly, serving goes on.
    assert not notifier.status("up")
    notifier.close()
    assert Notifier.from_environ({}) is None
    assert Notifier.from_environ({"NOTIFY_SOCKET": "relative/path"}) is None


def test_watchdog_for_another_process_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}
    notifier = Notifier.from_environ(env)
    assert notifier is not None
    assert notifier.watchdog_interval is None
    notifier.close()
