"""Static assets with caching and ranges, and a JSON API other origins may call, compressed.

Run it:   python -m framework serve examples.static_site:app --port 8444
Poke it:  CA="$(python -m framework certs dev-ca)"
          curl --cacert "$CA" https://localhost:8444/assets/                 # index.html
          curl --cacert "$CA" -r 0-99 https://localhost:8444/assets/app.css   # 206, 100 bytes
          curl --cacert "$CA" --compressed -i https://localhost:8444/api/items
          curl --cacert "$CA" -i -X OPTIONS -H "Origin: http://localhost:3000" \\
               -H "Access-Control-Request-Method: POST" https://localhost:8444/api/items

A page served from http://localhost:3000 (a front-end dev server) may call the API; the
files under ``public/`` are served with ETag/Last-Modified, ranges and ``index.html``, and a
``.gz`` or ``.br`` file next to one is sent in its place to clients that take it.
"""

from pathlib import Path

from framework import App, CompressionMiddleware, CORSMiddleware, Request

app = App()
# The first middleware added is the outermost: preflights are answered before compression.
app.middleware(
    CORSMiddleware(
        ["http://localhost:3000"], allow_methods=["GET", "POST"], allow_headers=["Content-Type"]
    )
)
app.middleware(CompressionMiddleware())
app.static("/assets", Path(__file__).parent / "public", cache_control="public, max-age=3600")

ITEMS = [{"id": i, "name": f"item {i}"} for i in range(100)]


@app.get("/api/status")
async def status(request: Request) -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/items")
async def items(request: Request) -> list[dict[str, object]]:
    return ITEMS


@app.post("/api/items")
async def add_item(request: Request) -> dict[str, object]:
    item = await request.json()
    return {"received": item}
