"""``examples/chat.py`` served by ``framework serve``, talked to by ``examples/chat_client.py``.

Three client processes: two in one room see each other's messages, one in another room sees
none of them; ``GET /rooms`` lists who is where; end of input ends a client with status 0.
A member that never reads is dropped from its room once a broadcast to it times out, while
the others carry on.
"""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from framework import Client
from tests.conftest import TLSFiles
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

TIMEOUT = 15.0


class ChatClient:
    """``examples/chat_client.py`` in a subprocess: write lines to it, wait for lines from it."""

    def __init__(self, url: str, name: str, tls_files: TLSFiles, home: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "examples/chat_client.py", url, "--name", name]
            + ["--ca", str(tls_files.ca_cert)],
            cwd=REPO,
            env=environment(home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def say(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait_for(self, line: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while line not in self.seen:
            got = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert got is not None, f"client ended before {line!r}: {self.seen}"
            self.seen.append(got)

    def finish(self) -> list[str]:
        """Close its input; its exit status must be 0. Every line it printed."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.process.wait(timeout=TIMEOUT)
        assert self.process.stderr is not None
        errors = self.process.stderr.read()
        assert status == 0, errors
        for _ in range(10_000):
            got = self.lines.get(timeout=TIMEOUT)
            if got is None:
                break
            self.seen.append(got)
        return self.seen

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def test_chat_rooms_broadcast_between_client_processes(tls_files: TLSFiles, tmp_path: Path) -> None:
    args = ["examples.chat:app", "--port", "0", "--no-access-log"]
    args += ["--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key)]
    with serve_cli(args, env=environment(tmp_path), cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        base = f"wss://localhost:{port}/chat"
        clients: list[ChatClient] = []
        try:
            bob = ChatClient(f"{base}/kitchen", "bob", tls_files, tmp_path)
            clients.append(bob)
            bob.wait_for("* bob joined")
            carol = ChatClient(f"{base}/garden", "carol", tls_files, tmp_path)
            clients.append(carol)
            carol.wait_for("* carol joined")
            alice = ChatClient(f"{base}/kitchen", "alice", tls_files, tmp_path)
            clients.append(alice)
            alice.wait_for("* alice joined")
            bob.wait_for("* alice joined")

            async def rooms() -> object:
                async with Client(ca=tls_files.ca_cert) as client:
                    response = await client.get(f"https://localhost:{port}/rooms")
                    return response.json()

            assert asyncio.run(rooms()) == {"kitchen": ["alice", "bob"], "garden": ["carol"]}

            alice.say("hi bob")
            bob.wait_for("alice: hi bob")
            alice.wait_for("alice: hi bob")  # the sender sees its message in the room too
            bob.say("hello alice")
            alice.wait_for("bob: hello alice")
            carol.say("anyone?")
            carol.wait_for("carol: anyone?")

            assert alice.finish()[-1] == "bob: hello alice"
            bob.wait_for("* alice left")
            bob.finish()
            garden = carol.finish()
            assert garden == ["* carol joined", "carol: anyone?"]
        finally:
            for client in clients:
                client.kill()


def test_chat_drops_a_member_that_does_not_read(
    tls_files: TLSFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.asyncio.client import connect

    from examples import chat
    from tests.conftest import serve_in_thread
    from tests.e2e.test_server import raw_tls
    from tests.e2e.test_websocket import _raw_handshake

    monkeypatch.setattr(chat, "SEND_TIMEOUT", 0.5)
    with serve_in_thread(chat.app, tls_files, loop="uvloop") as server:
        with raw_tls(server, tls_files, rcvbuf=16 * 1024) as slow:
            _raw_handshake(slow, "/chat/kitchen?name=slow")  # and never reads again
            deadline = time.monotonic() + TIMEOUT
            while "slow" not in chat.rooms.get("kitchen", {}).values():
                assert time.monotonic() < deadline, "the slow member never joined"
                time.sleep(0.01)

            async def talk() -> int:
                url = f"wss://localhost:{server.port}/chat/kitchen?name=fast"
                text = "x" * 4000
                async with connect(url, ssl=tls_files.client_context()) as ws:
                    for sent in range(1, 5001):  # bounded: far more than the buffers hold
                        await ws.send(text)
                        while json.loads(await ws.recv()).get("text") != text:
                            pass  # join and leave notices
                        if "slow" not in chat.rooms["kitchen"].values():
                            return sent
                return -1

            sent = asyncio.run(asyncio.wait_for(talk(), 60))
    # Dropped once its buffers were full, not at once: it was a member for a while.
    assert sent > 10, f"the member that never reads was dropped after {sent} messages"
    print(f"the member that never reads was dropped after {sent} broadcasts of 4 KB")
