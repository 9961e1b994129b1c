"""What the process-model tests share: an app that says which process and code answered, a
load generator on real TLS connections, and a listener standing in for systemd's notify socket.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from framework.client import Client, Timeout
from framework.deploy import new_event_loop

#: The app under test: which process answered and which code version it runs; /crash kills
#: its worker at once, as a segfault or an out-of-memory kill would; /slow says it started
#: (a file the test waits for) and answers after a while.
APP = """\
import asyncio
import os
from pathlib import Path

from framework import App, Request

VERSION = "{version}"
app = App()


@app.get("/")
async def index(request: Request) -> dict:
    return {{"pid": os.getpid(), "version": VERSION}}


@app.get("/crash")
async def crash(request: Request) -> str:
    os._exit(70)


@app.get("/slow")
async def slow(request: Request) -> str:
    Path(request.query["started"]).touch()
    await asyncio.sleep(float(request.query["seconds"]))
    return "finished"
"""

STEP_TIMEOUT = 20.0


def write_app(directory: Path, version: str) -> None:
    """``deployapp.py`` in ``directory`` answering with ``version``."""
    source = directory / "deployapp.py"
    source.write_text(APP.format(version=version))
    # A rewrite within the same second must still be seen as new code by the next import.
    stamp = time.time() + (1.0 if version != "v1" else 0.0)
    os.utime(source, (stamp, stamp))
    for cached in (directory / "__pycache__").glob("deployapp*"):
        cached.unlink()


def get(port: int, ca: Path, path: str = "/", host: str = "127.0.0.1") -> dict[str, object]:
    """One request on a new TLS connection; the JSON answer."""
    data = exchange(port, ca, path, host)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:200]
    answer: dict[str, object] = json.loads(body)
    return answer


def exchange(port: int, ca: Path, path: str = "/", host: str = "127.0.0.1") -> bytes:
    """One request on a new TLS connection; every byte of the answer (none if it died)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, port), timeout=STEP_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        for _ in range(1000):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@dataclass
class Load:
    """Requests from a thread, on kept-alive connections and on new ones, until ``stop()``.

    Every request must end in a 200; anything else is recorded in ``failures``.
    """

    url: str
    ca: Path
    tasks: int = 4
    max_seconds: float = 120.0
    max_requests: int = 200_000
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: collections.Counter[str] = field(default_factory=collections.Counter)
    pids: collections.Counter[int] = field(default_factory=collections.Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def wait_for(self, requests: int, timeout: float = STEP_TIMEOUT) -> None:
        """Until at least ``requests`` more requests succeeded (bounded)."""
        target = self.ok + requests
        deadline = time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"load stalled at {self.ok}: {self.failures[:3]}"
            assert self._thread is not None
            assert self._thread.is_alive(), "load generator died"
            time.sleep(0.01)  # polling a counter the load thread advances

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=STEP_TIMEOUT * 2)
        assert not self._thread.is_alive(), "load generator did not stop"

    def _run(self) -> None:
        loop = new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        timeout = Timeout(connect=STEP_TIMEOUT, read=STEP_TIMEOUT, write=STEP_TIMEOUT)
        async with Client(ca=self.ca, timeout=timeout) as shared:

            async def worker(fresh: bool) -> None:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    if self.ok + len(self.failures) >= self.max_requests:
                        return
                    try:
                        if fresh:
                            async with Client(ca=self.ca, timeout=timeout) as client:
                                response = await client.get(self.url)
                                answer = response.json()
                        else:
                            response = await shared.get(self.url)
                            answer = response.json()
                    except Exception as exc:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if response.status != 200:
                        self.failures.append(f"status {response.status}")
                        continue
                    self.ok += 1
                    self.versions[str(answer["version"])] += 1
                    self.pids[int(answer["pid"])] += 1

            await asyncio.gather(*(worker(fresh=i % 2 == 1) for i in range(self.tasks)))


class NotifyListener:
    """A datagram socket standing where systemd's ``NOTIFY_SOCKET`` would be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def next(self, key: str, timeout: float = STEP_TIMEOUT) -> dict[str, str]:
        """The next message that sets ``key`` (earlier ones are kept in ``messages``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {key} in time; got {self.messages}"
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(message)
            if key in message:
                return message

    def close(self) -> None:
        self.sock.close()
