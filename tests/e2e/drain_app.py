"""The app the drain tests stop: a hello, an endless stream and a large body.

Run it:   python -m framework serve tests.e2e.drain_app:app
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from framework import App, Request, Response, StreamingResponse

app = App()
#: The stream's bound: far longer than any test runs, so only a stop ends it.
STREAM_CHUNKS = 100_000
BIG = b"x" * (64 * 1024 * 1024)
#: How long /slow takes: long enough for a test to stop the server while it runs.
SLOW_SECONDS = 0.5
log = logging.getLogger("framework.drain_app")


@app.get("/")
async def hello(request: Request) -> str:
    return "Hello, world!"


@app.get("/stream")
async def stream(request: Request) -> StreamingResponse:
    async def produce() -> AsyncIterator[bytes]:
        for i in range(STREAM_CHUNKS):
            yield b"tick %d\n" % i
            await asyncio.sleep(0.01)

    return StreamingResponse(produce(), media_type="text/plain")


@app.get("/big")
async def big(request: Request) -> Response:
    return Response(body=BIG, media_type="application/octet-stream")


@app.get("/slow")
async def slow(request: Request) -> str:
    log.info("slow request started")
    await asyncio.sleep(SLOW_SECONDS)
    return "slept"
