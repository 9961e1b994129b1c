"""The benchmark app on this package.

Run it:   python -m framework serve benchmarks.apps.ours:app --certfile C --keyfile K
Poke it:  curl --cacert CA https://localhost:8443/users/7
"""

from framework import App, Request, Response

app = App()

HELLO = "Hello, world!"
BLOBS = {"64k": b"x" * 65536, "1m": b"x" * 1048576}


@app.get("/")
async def hello(request: Request) -> str:
    return HELLO


@app.get("/users/{user_id:int}")
async def user(request: Request, user_id: int) -> dict[str, object]:
    return {"id": user_id, "name": f"user {user_id}"}


@app.get("/bytes/{size}")
async def blob(request: Request, size: str) -> Response:
    return Response(BLOBS[size], media_type="application/octet-stream")


@app.post("/upload")
async def upload(request: Request) -> str:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return str(size)
