"""Where the ASGI adapter's time goes, without a socket: thread CPU time per call, in µs.

``python -m benchmarks.asgi_parts``: the adapter in full (``ASGIHandler(app)(request)``), the
native twin route, the same ASGI exchange with the app awaited directly (what stepping it
costs is the difference), the scope and per-request state alone, a task created and stepped
once (what an app in a task of its own would add), and the ``Request`` itself; each over
30,000 calls on uvloop, twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import uvloop

from framework.asgi.handler import ASGIHandler, _Cycle
from framework.asgi.scope import http_scope
from framework.messages import Headers, Request

from .apps.asgi_hello import app, native

CALLS = 30_000
HEADERS = Headers.from_raw([(b"host", b"localhost"), (b"user-agent", b"wrk")])


def _request() -> Request:
    return Request("GET", b"/", HEADERS, client=("127.0.0.1", 1234), server=("127.0.0.1", 8443))


async def _per_call(func: Callable[[], Awaitable[object]]) -> float:
    start = time.thread_time()
    for _ in range(CALLS):
        await func()
    return (time.thread_time() - start) / CALLS * 1e6


async def main() -> None:
    handler = ASGIHandler(app)
    loop = asyncio.get_running_loop()

    async def full() -> object:
        return await handler(_request())

    async def native_route() -> object:
        return await native(_request())

    async def inline() -> object:
        request = _request()
        cycle = _Cycle(request)
        await app(http_scope(request, "", {}, None), cycle.receive, cycle.send)
        return cycle.response()

    async def scope_and_state() -> object:
        request = _request()
        return _Cycle(request), http_scope(request, "", {}, None)

    async def task_step() -> object:
        async def nothing() -> None:
            pass

        task = loop.create_task(nothing())
        await asyncio.sleep(0)
        return task

    async def request_only() -> object:
        return _request()

    parts = {
        "adapter": full,
        "native": native_route,
        "inline": inline,
        "scope+state": scope_and_state,
        "task": task_step,
        "request": request_only,
    }
    for _ in range(2):
        found = [f"{name} {await _per_call(func):.2f}" for name, func in parts.items()]
        print("  ".join(found))


if __name__ == "__main__":
    uvloop.run(main())
