"""Streaming both ways: a download made as it is sent, an upload counted as it arrives.

Run it:   python -m framework serve examples.streaming:app
Poke it:  CA="$(python -m framework certs dev-ca)"
          curl --cacert "$CA" -N https://localhost:8443/ticks
          head -c 50000000 /dev/zero | curl --cacert "$CA" -T - https://localhost:8443/upload

The server waits for the client to take each piece before it asks for the next one, so a slow
reader slows the generator down instead of filling the server's memory.
"""

import asyncio
from collections.abc import AsyncIterator

from framework import App, Request, StreamingResponse

app = App()


@app.get("/ticks")
async def ticks(request: Request) -> StreamingResponse:
    count = int(request.query.get("count") or 5)

    async def produce() -> AsyncIterator[str]:
        for i in range(count):
            yield f"tick {i}\n"
            await asyncio.sleep(0.2)

    return StreamingResponse(produce(), media_type="text/plain")


@app.put("/upload")
@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"received": size}
