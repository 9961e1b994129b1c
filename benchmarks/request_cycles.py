"""Whole request cycles for instruction counts: ``python -m benchmarks.request_cycles TASKS N``.

The server of ``apps/ours.py`` and a client that sends N keep-alive GETs of ``/`` one after
another, in one process on one uvloop loop, over plain TCP on 127.0.0.1 (no TLS: its
instructions would only add the same to every variant). TASKS is ``eager`` (the server's own
choice: eager request tasks on Python 3.12+) or ``lazy`` (a task factory of the application's
own, so every request task waits for the loop's next turn). A third argument, ``log`` (or
``json``), turns the access log on, written as ``serve`` writes it, to ``/dev/null``; ``asgi``
serves the raw ASGI hello app of ``apps/asgi_hello.py`` through the adapter instead, and
``asgi-native`` its native twin route (the adapter's cost is the difference). Under
``valgrind --tool=callgrind`` the instructions of N cycles less those of a smaller N, divided
by the difference, are one request's, server and client together: a count that repeats,
unlike wall-clock time on a shared machine (benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import uvloop

from benchmarks.apps.ours import app
from framework.server import Server

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


class _Client(asyncio.Protocol):
    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.left = count
        self.done = done
        self.received = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        # The answer to "/" is 13 bytes after a fixed head; one answer per request.
        self.received += data
        if not self.received.endswith(b"Hello, world!"):
            return
        self.received = b""
        self.left -= 1
        if self.left:
            self.transport.write(REQUEST)
        else:
            self.transport.close()
            self.done.set_result(None)


def _lazy(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, **kwargs)


def _install_access_log(log: str) -> None:
    from framework import accesslog

    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    if log == "json":
        accesslog.install(devnull, "json")
    else:
        accesslog.install(devnull)
    logging.getLogger("framework.access").setLevel(logging.INFO)


async def main(tasks: str, count: int, log: str = "") -> None:
    loop = asyncio.get_running_loop()
    if tasks == "lazy":
        loop.set_task_factory(_lazy)
    # One connection carries every request: no cap on requests per connection.
    settings: dict[str, Any] = {"max_requests_per_connection": None}
    handler: Any = app
    if log in ("asgi", "asgi-native"):
        from benchmarks.apps.asgi_hello import app as asgi_app
        from benchmarks.apps.asgi_hello import native
        from framework.asgi import ASGIHandler

        handler = native if log == "asgi-native" else ASGIHandler(asgi_app, lifespan="off")
    elif log:
        _install_access_log(log)
        settings["access_log"] = True
        if log == "json":
            settings["access_log_format"] = "json"
    server = Server(handler, host="127.0.0.1", port=0, ssl=None, **settings)
    await server.start()
    if count:
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda: _Client(count, done), "127.0.0.1", server.port)
        await done
    await server.aclose(1)


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
