"""A small Django project in one module for the end-to-end tests: async views under ASGI.

Settings are configured here, once per process (Django keeps them globally), before the ASGI
application is made: a JSON view with a path converter, a POST echo, an async streaming body,
a 404 from Django's own resolver, and an error page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="framework-tests-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402 - after settings
from django.http import (  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402


async def item(request: HttpRequest, item_id: int) -> JsonResponse:
    await asyncio.sleep(0)  # an async view that awaits
    return JsonResponse({"item_id": item_id, "secure": request.is_secure()})


async def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(3):
            yield json.dumps({"piece": i}).encode() + b"\n"
            await asyncio.sleep(0)

    return StreamingHttpResponse(pieces(), content_type="application/x-ndjson")


async def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


urlpatterns = [
    path("items/<int:item_id>", item),
    path("echo", echo),
    path("stream", stream),
    path("fail", fail),
]

application = get_asgi_application()
