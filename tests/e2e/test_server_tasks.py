"""The task that answers each request: eager on Python 3.12+, the loop's own factory otherwise.

On 3.12+ a handler that answers without waiting runs to its end inside ``data_received``; the
connection must then be idle again (no finished task left as "the request in progress"), and
pipelined requests behind it must be read in a loop, not by recursion.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from framework import App, Request
from framework.server import Server
from framework.server.config import ServerConfig
from framework.server.protocol import ServerContext
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_server import Responses, only_connection, raw_tls, request_bytes

EAGER = sys.version_info >= (3, 12)


def _app(seen: list[Any], server_box: list[Server]) -> App:
    app = App()

    @app.get("/now/{n}")
    async def now(request: Request, n: str) -> str:
        # What the connection reports as its running task while the handler runs.
        seen.append(only_connection(server_box[0]).task)
        return n

    @app.get("/later/{n}")
    async def later(request: Request, n: str) -> str:
        await asyncio.sleep(0)
        return n

    return app


def test_handler_task_is_eager_where_asyncio_has_it(tls_files: TLSFiles, loop_name: str) -> None:
    seen: list[Any] = []
    box: list[Server] = []
    with serve_in_thread(_app(seen, box), tls_files, loop=loop_name) as server:
        box.append(server)
        with raw_tls(server, tls_files) as sock:
            responses = Responses(sock)
            for n in ("1", "2"):
                # The second request is read and answered only if the first one's task did
                # not stay behind as the connection's request in progress.
                sock.sendall(request_bytes("GET", f"/now/{n}"))
                response, body = responses.next("GET", f"/now/{n}")
                assert (response.status_code, body) == (200, n.encode())
    assert len(seen) == 2
    for task in seen:
        if EAGER:
            # Started eagerly: the handler ran before start_task returned, so before the
            # connection was given a task at all.
            assert task is None
        else:
            assert isinstance(task, asyncio.Task)


def test_many_pipelined_requests_answered_at_once_in_order(
    tls_files: TLSFiles, loop_name: str
) -> None:
    # Enough requests in one read that reading each next one from inside the previous
    # (eager) task would exceed the recursion limit.
    count = 3000
    seen: list[Any] = []
    box: list[Server] = []
    # No cap on requests per connection (by default it closes after 1,000).
    config = ServerConfig(max_requests_per_connection=None)
    with serve_in_thread(_app(seen, box), tls_files, loop=loop_name, config=config) as server:
        box.append(server)
        with raw_tls(server, tls_files) as sock:
            # Mostly handlers that answer at once, a few that wait.
            targets = [f"/{'now' if i % 500 else 'later'}/{i}" for i in range(count)]
            sock.sendall(b"".join(request_bytes("GET", t) for t in targets))
            responses = Responses(sock)
            for i, target in enumerate(targets):
                response, body = responses.next("GET", target)
                assert (response.status_code, body) == (200, str(i).encode())
            # The connection is idle and still serves the next request.
            sock.sendall(request_bytes("GET", "/now/last"))
            assert responses.next("GET", "/now/last")[1] == b"last"
    assert len(seen) == count - count // 500 + 1


async def _start(context: ServerContext) -> asyncio.Task[None]:
    ran: list[bool] = []

    async def answer() -> None:
        ran.append(True)

    task = context.start_task(answer())
    done_at_once = task.done()
    await task
    assert ran == [True]
    return done_at_once  # type: ignore[return-value]


def test_start_task_eager_only_without_a_task_factory() -> None:
    async def main() -> tuple[bool, bool, list[Any]]:
        loop = asyncio.get_running_loop()
        plain = ServerContext(_noop, ServerConfig(), loop, True)
        eager = await _start(plain)
        made: list[Any] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        try:
            custom = await _start(ServerContext(_noop, ServerConfig(), loop, True))
        finally:
            loop.set_task_factory(None)
        return eager, custom, made

    eager, custom, made = asyncio.run(main())
    assert eager is EAGER
    # The application's task factory is used, and it starts tasks as it pleases (lazily here).
    assert custom is False
    assert len(made) == 1


async def _noop(request: Request) -> Any:  # pragma: no cover - never called
    raise AssertionError


@pytest.mark.skipif(not EAGER, reason="eager tasks need Python 3.12+")
def test_uvloop_honours_the_task_factory() -> None:
    import uvloop

    async def main() -> bool:
        return await _start(ServerContext(_noop, ServerConfig(), asyncio.get_running_loop(), True))

    assert uvloop.run(main()) is True
