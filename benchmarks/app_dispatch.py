"""The app's own cost per request, no sockets: ``python benchmarks/app_dispatch.py LABEL``.

An ``App`` answers ``GET /`` (a str) and ``GET /users/7`` (a typed path parameter, a dict)
20,000 times each, in process; the best of five rounds is printed in microseconds per request.
To compare two checkouts in one sitting, run it alternately from a directory outside both,
with ``PYTHONPATH`` at each: ``cd /tmp && PYTHONPATH=/path/to/a python /path/to/a/benchmarks/
app_dispatch.py a`` (from inside a checkout, its own ``framework`` would be imported).
"""

from __future__ import annotations

import asyncio
import sys
import time

from framework import App, Request

app = App()


@app.get("/users/{user_id:int}")
async def user(request: Request, user_id: int) -> dict[str, int]:
    return {"id": user_id}


@app.get("/")
async def hello(request: Request) -> str:
    return "hi"


async def main(label: str, rounds: int = 5, n: int = 20_000) -> None:
    for target in ("/", "/users/7"):
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(n):
                await app(Request("GET", target))
            best = min(best, time.perf_counter() - start)
        print(f"{label} {target} {best / n * 1e6:.2f} us/request")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "app"))
