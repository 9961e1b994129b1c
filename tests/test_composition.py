"""Composition: routers included under a prefix, url_for, mounting an App or an ASGI app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import App, Client, Request, Response, Router
from tests.conftest import TLSFiles, serve_in_thread


def call(app: App, method: str = "GET", target: str = "/") -> Response:
    return asyncio.run(app(Request(method, target)))


def make_admin() -> App:
    admin = App()

    @admin.middleware
    async def tag(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["x-admin"] = "1"
        return response

    @admin.get("/users/{name}")
    async def admin_user(request: Request, name: str) -> dict[str, Any]:
        return {"path": request.path, "root": request.state.root_path, "name": name}

    started: list[str] = []

    @admin.on_startup
    async def up() -> None:
        started.append("admin")

    admin.state.started = started
    return admin


def make_app() -> App:
    api = Router()

    @api.get("/users/{user_id:int}")
    async def get_user(request: Request, user_id: int, full: bool = False) -> dict[str, Any]:
        return {"id": user_id, "full": full}

    @api.post("/files/{rest:path}", name="upload")
    async def files(request: Request, rest: str) -> str:
        return rest

    app = App()
    app.include(api, prefix="/api")
    app.mount("/admin", make_admin(), name="admin")

    @app.get("/")
    async def home(request: Request) -> str:
        return "home"

    return app


def test_included_routes_answer_under_the_prefix() -> None:
    app = make_app()
    assert call(app, target="/api/users/3?full=true").body == b'{"id":3,"full":true}'
    assert call(app, target="/users/3").status == 404
    assert call(app, "POST", "/api/files/a/b.txt").body == b"a/b.txt"


def test_url_for() -> None:
    app = make_app()
    assert app.url_for("get_user", user_id=7) == "/api/users/7"
    assert app.url_for("upload", rest="dir/a b.txt") == "/api/files/dir/a%20b.txt"
    assert app.url_for("home") == "/"
    assert app.url_for("admin:admin_user", name="a b") == "/admin/users/a%20b"
    # Paths are decoded before routing, so a slash cannot be in a one-segment parameter.
    with pytest.raises(ValueError, match="does not fit"):
        app.url_for("admin:admin_user", name="x/y")
    with pytest.raises(LookupError, match="no route named 'nope'; the names are: "):
        app.url_for("nope")
    with pytest.raises(ValueError, match=r"missing \['user_id'\]"):
        app.url_for("get_user")
    with pytest.raises(ValueError, match=r"unexpected \['x'\]"):
        app.url_for("home", x=1)
    with pytest.raises(ValueError, match="does not fit"):
        app.url_for("get_user", user_id="seven")
    with pytest.raises(LookupError, match="no app mounted with name 'zzz'"):
        app.url_for("zzz:home")


def test_mounted_app_sees_the_path_below_its_prefix() -> None:
    app = make_app()
    response = call(app, target="/admin/users/ada")
    assert response.status == 200
    assert response.headers["x-admin"] == "1"
    assert response.body == b'{"path":"/users/ada","root":"/admin","name":"ada"}'
    missing = call(app, target="/admin/nothing")
    assert (missing.status, missing.headers.get("x-admin")) == (404, "1")
    assert call(app, target="/administrator").status == 404


@pytest.mark.parametrize("prefix", ["api", "/api/", "/{x}", "/a b"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="a prefix must be a literal path"):
        App().include(Router(), prefix=prefix)
    with pytest.raises(ValueError, match="a prefix must be a literal path"):
        App().mount(prefix, App())


def test_router_refuses_a_sync_handler() -> None:
    router = Router()
    with pytest.raises(TypeError, match="must be an async function"):
        router.add_route("/", lambda request: None)


def test_mounted_starlette_app_and_app_over_tls(tls_files: TLSFiles) -> None:
    starlette = pytest.importorskip("starlette.applications")
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse as StarletteJSON
    from starlette.routing import Route as StarletteRoute

    async def legacy(request: StarletteRequest) -> StarletteJSON:
        return StarletteJSON({"path": request.url.path, "root": request.scope["root_path"]})

    app = make_app()
    app.mount("/legacy", starlette.Starlette(routes=[StarletteRoute("/hello", legacy)]))
    admin = app.mounts[0].handler
    assert isinstance(admin, App)

    async def main() -> None:
        await app.startup()
        try:
            with serve_in_thread(app, tls_files) as server:
                async with Client(f"https://localhost:{server.port}", ca=tls_files.ca_cert) as c:
                    got = await c.get("/legacy/hello")
                    assert got.status == 200
                    assert got.json() == {"path": "/legacy/hello", "root": "/legacy"}
                    mounted = await c.get("/admin/users/bo")
                    assert mounted.json()["root"] == "/admin"
                    assert (await c.get("/api/users/1")).status == 200
        finally:
            await app.shutdown()

    asyncio.run(main())
    assert admin.state.started == ["admin"]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10**12),
    st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20),
)
def test_url_for_round_trips_through_routing(number: int, text: str) -> None:
    app = App()

    @app.get("/n/{n:int}/s/{s}")
    async def both(request: Request, n: int, s: str) -> str:
        return ""

    try:
        path = app.url_for("both", n=number, s=text)
    except ValueError:
        assert "/" in text or text in (".", "..")
        return
    route, params = app.router.resolve("GET", Request("GET", path).path)
    assert route.name == "both"
    assert params == {"n": number, "s": text}
