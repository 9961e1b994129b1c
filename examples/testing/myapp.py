"""A small app with the usual parts, and its tests in test_myapp.py.

Run the tests (from the repository's root):  python -m pytest examples/testing
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from framework import App, HTTPError, JSONResponse, Request, StreamingResponse

app = App()

# What the startup hook opens and the shutdown hook closes (a database pool, in a real app).
state: dict[str, Any] = {"items": None, "closed": False, "feeds_ended": 0}


@app.on_startup
async def open_store() -> None:
    state["items"] = {1: {"id": 1, "name": "tea"}}
    state["closed"] = False


@app.on_shutdown
async def close_store() -> None:
    state["items"] = None
    state["closed"] = True


@app.get("/items/{item_id:int}")
async def get_item(request: Request, item_id: int) -> dict[str, Any]:
    try:
        return dict(state["items"][item_id])
    except KeyError:
        raise HTTPError(404, f"no item {item_id}") from None


@app.post("/items")
async def add_item(request: Request) -> JSONResponse:
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise HTTPError(422, 'send {"name": "..."}')
    item_id = max(state["items"]) + 1
    state["items"][item_id] = {"id": item_id, "name": body["name"]}
    return JSONResponse(state["items"][item_id], status=201)


@app.get("/feed")
async def feed(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        try:
            for i in range(1000):  # 10 s in all: a client reads what it needs and leaves
                yield f"event {i}\n"
                await asyncio.sleep(0.01)
        finally:
            state["feeds_ended"] += 1

    return StreamingResponse(events(), media_type="text/plain")


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    return {"client": request.tls.peer_common_name if request.tls else None}


@app.get("/crash")
async def crash(request: Request) -> str:
    raise RuntimeError("the store is on fire")
