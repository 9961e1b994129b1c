"""The benchmark app on aiohttp.web.

Run it:   python -m benchmarks.apps.serve aiohttp --port 8443 --cert C --key K
"""

from aiohttp import web

BLOBS = {"64k": b"x" * 65536, "1m": b"x" * 1048576}


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world!")


async def user(request: web.Request) -> web.Response:
    user_id = int(request.match_info["user_id"])
    return web.json_response({"id": user_id, "name": f"user {user_id}"})


async def blob(request: web.Request) -> web.Response:
    return web.Response(
        body=BLOBS[request.match_info["size"]], content_type="application/octet-stream"
    )


async def upload(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
    return web.Response(text=str(size))


def make_app() -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.add_routes(
        [
            web.get("/", hello),
            web.get(r"/users/{user_id:\d+}", user),
            web.get("/bytes/{size}", blob),
            web.post("/upload", upload),
        ]
    )
    return app
