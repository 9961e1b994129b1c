"""A small site: a form with a session, file uploads, static assets and a JSON API, in one app.

Run it:   python -m framework serve examples.site:app
Try it:   CA="$(python -m framework certs dev-ca)"
          curl --cacert "$CA" -c jar -b jar -d name=Ada https://localhost:8443/hello
          curl --cacert "$CA" -c jar -b jar https://localhost:8443/
          curl --cacert "$CA" -F file=@README.md https://localhost:8443/upload
          curl --cacert "$CA" 'https://localhost:8443/api/notes?limit=5'

``SITE_SECRET_KEY`` signs the session cookie; without it a random key is made at start (so
sessions end when the server restarts).
"""

from __future__ import annotations

import hashlib
import html
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework import (
    App,
    HTTPError,
    JSONResponse,
    RedirectResponse,
    Request,
    Response,
)
from framework.forms import UploadFile
from framework.sessions import SessionMiddleware

app = App()
app.middleware(
    SessionMiddleware(secret_key=os.environ.get("SITE_SECRET_KEY") or secrets.token_urlsafe(32))
)
notes: list[dict[str, Any]] = []
app.static("/assets", Path(__file__).parent / "site_assets")  # ETag, 304, ranges, gzip siblings


@dataclass
class NewNote:
    """The body of ``POST /api/notes``."""

    text: str
    tags: list[str] | None = None


@app.get("/")
async def home(request: Request) -> Response:
    name = request.session.get("name")
    greeting = f"Hello again, {html.escape(name)}." if name else "Hello, stranger."
    page = (
        '<!doctype html><title>site</title><link rel="stylesheet" href="/assets/style.css">'
        f"<p>{greeting}</p>"
        '<form method="post" action="/hello"><input name="name"><button>Say hello</button></form>'
        '<form method="post" action="/upload" enctype="multipart/form-data">'
        '<input type="file" name="file"><button>Upload</button></form>'
    )
    return Response(page, media_type="text/html; charset=utf-8")


@app.post("/hello")
async def hello(request: Request) -> Response:
    form = await request.form()
    name = form.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HTTPError(400, "say your name: name=...")
    request.session["name"] = name.strip()[:100]
    return RedirectResponse("/", status=303)


@app.post("/upload", max_body_size=100 * 1024 * 1024)
async def upload(request: Request) -> dict[str, Any]:
    form = await request.form()
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise HTTPError(400, "send a file as the form field 'file'")
        digest = hashlib.sha256()
        while chunk := await file.read(64 * 1024):
            digest.update(chunk)
        return {"filename": file.filename, "size": file.size, "sha256": digest.hexdigest()}
    finally:
        await form.close()


@app.get("/api/notes")
async def list_notes(request: Request, limit: int = 10, tag: str | None = None) -> list[Any]:
    chosen = [n for n in notes if tag is None or tag in (n["tags"] or [])]
    return chosen[:limit]


@app.post("/api/notes")
async def add_note(request: Request, note: NewNote) -> JSONResponse:
    notes.append({"id": len(notes) + 1, "text": note.text, "tags": note.tags})
    return JSONResponse(notes[-1], status=201)
