"""The benchmark app on Starlette, served by uvicorn (h11 or httptools) and hypercorn.

Starlette rather than raw ASGI: it is what a user of those servers would write, and the
JSON route's path parameter goes through its router as ours goes through our router.

Run it:   uvicorn benchmarks.apps.starlette_app:app --ssl-certfile C --ssl-keyfile K
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

BLOBS = {"64k": b"x" * 65536, "1m": b"x" * 1048576}


async def hello(request: Request) -> Response:
    return PlainTextResponse("Hello, world!")


async def user(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    return JSONResponse({"id": user_id, "name": f"user {user_id}"})


async def blob(request: Request) -> Response:
    return Response(BLOBS[request.path_params["size"]], media_type="application/octet-stream")


async def upload(request: Request) -> Response:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return PlainTextResponse(str(size))


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/users/{user_id:int}", user),
        Route("/bytes/{size}", blob),
        Route("/upload", upload, methods=["POST"]),
    ]
)
