"""Cookies read and written, signed sessions, hostile Cookie headers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework import App, Request, Response, TLSInfo
from framework.cookies import Cookie, parse_cookie_header
from framework.sessions import SessionMiddleware

TLS = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256")
KEY = "k" * 32


def call(app: App, target: str = "/", cookie: str | None = None, *, tls: bool = True) -> Response:
    headers = {"cookie": cookie} if cookie else {}
    return asyncio.run(app(Request("GET", target, headers, tls=TLS if tls else None)))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("a=1; b=2", {"a": "1", "b": "2"}),
        ("a=1;b=2;", {"a": "1", "b": "2"}),
        ('a="quoted value"', {"a": "quoted value"}),
        ("a=1; a=2", {"a": "1"}),
        ("a==b=", {"a": "=b="}),
        ("noequals; c=3", {"c": "3"}),
        ("bad name=1; ok=2", {"ok": "2"}),
        ("=x; ;;; d=", {"d": ""}),
        ("", {}),
    ],
)
def test_parse_cookie_header(header: str, expected: dict[str, str]) -> None:
    assert parse_cookie_header(header) == expected


@given(st.text(max_size=300))
def test_parse_cookie_header_survives_anything(header: str) -> None:
    cookies = parse_cookie_header(header)
    for name, value in cookies.items():
        assert name
        assert ";" not in name
        assert "=" not in name
        assert ";" not in value


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9_\-]{1,12}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_\-.:/+=]{0,20}", fullmatch=True),
        max_size=8,
    )
)
def test_set_then_parse_round_trips(cookies: dict[str, str]) -> None:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    assert parse_cookie_header(header) == cookies


def test_set_cookie_defaults_are_the_safe_ones() -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> Response:
        response = Response("ok")
        response.set_cookie("theme", "dark")
        response.set_cookie(
            "seen",
            "1",
            max_age=60,
            expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
            path="/app",
            domain="example.test",
            httponly=False,
            samesite="strict",
        )
        response.delete_cookie("old")
        return response

    over_https = call(app).headers.get_all("set-cookie")
    assert over_https == [
        "theme=dark; Path=/; Secure; HttpOnly; SameSite=Lax",
        "seen=1; Path=/app; Domain=example.test; Max-Age=60; "
        "Expires=Wed, 02 Jan 2030 03:04:05 GMT; Secure; SameSite=Strict",
        "old=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; "
        "SameSite=Lax",
    ]
    over_http = call(app, tls=False).headers.get_all("set-cookie")
    assert over_http[0] == "theme=dark; Path=/; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a b"}, "must be a token"),
        ({"name": "a", "value": "x; Domain=evil"}, "cannot carry"),
        ({"name": "a", "value": "x\r\nSet-Cookie: b=1"}, "cannot carry"),
        ({"name": "a", "path": "/;Secure"}, "may not contain"),
        ({"name": "a", "samesite": "sometimes"}, "samesite must be"),
        ({"name": "a", "samesite": "none", "secure": False}, "needs secure=True"),
    ],
)
def test_cookie_refuses_what_a_header_cannot_carry(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cookie(**kwargs)


def session_app(middleware: SessionMiddleware) -> App:
    app = App()
    app.middleware(middleware)

    @app.get("/count")
    async def count(request: Request) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.get("/peek")
    async def peek(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.get("/add")
    async def add(request: Request) -> dict[str, Any]:
        request.session.setdefault("cart", [])
        request.session["cart"].append(len(request.session["cart"]))
        return dict(request.session)

    @app.get("/append")
    async def append(request: Request) -> dict[str, Any]:
        request.session["cart"].append("x")  # a change inside a value, no __setitem__
        return dict(request.session)

    @app.get("/logout")
    async def logout(request: Request) -> str:
        request.session.clear()
        return "bye"

    return app


def cookie_of(response: Response) -> str:
    (header,) = response.headers.get_all("set-cookie")
    return header.split(";")[0]


def test_session_round_trip_and_tamper() -> None:
    app = session_app(SessionMiddleware(secret_key=KEY))
    first = call(app, "/count")
    jar = cookie_of(first)
    assert "HttpOnly" in first.headers["set-cookie"]
    assert "Secure" in first.headers["set-cookie"]
    second = call(app, "/count", jar)
    assert second.body == b'{"n":2}'
    # Reading without changing writes no cookie.
    assert call(app, "/peek", cookie_of(second)).headers.get_all("set-cookie") == []
    # A changed payload (or signature) is a fresh, empty session.
    name, _, value = cookie_of(second).partition("=")
    body, stamp, sig = value.split(".")
    forged = SessionMiddleware(secret_key="x" * 32).encode({"n": 100}).split(".")[0]
    assert call(app, "/peek", f"{name}={forged}.{stamp}.{sig}").body == b"{}"
    assert call(app, "/peek", f"{name}={value[:-2]}").body == b"{}"
    assert call(app, "/peek", f"{name}=garbage").body == b"{}"
    # Clearing deletes the cookie.
    bye = call(app, "/logout", cookie_of(second))
    assert "Max-Age=0" in bye.headers["set-cookie"]


def test_session_key_rotation_and_expiry() -> None:
    old = SessionMiddleware(secret_key="old-key-" * 4)
    value = old.encode({"user": "ada"})
    rotated = SessionMiddleware(secret_key=["new-key-" * 4, "old-key-" * 4])
    assert rotated.decode(value) == {"user": "ada"}
    assert rotated.encode({"a": 1}).split(".")[-1] != old.encode({"a": 1}).split(".")[-1]
    assert SessionMiddleware(secret_key="new-key-" * 4).decode(value) is None
    short = SessionMiddleware(secret_key=KEY, max_age=60)
    stale = short.encode({"a": 1}, now=1_000_000)
    assert short.decode(stale, now=1_000_030) == {"a": 1}
    assert short.decode(stale, now=1_000_061) is None


def test_session_needs_a_real_key_and_the_middleware() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SessionMiddleware(secret_key="short")
    app = App()

    @app.get("/")
    async def handler(request: Request) -> str:
        return str(request.session)

    response = call(app)
    assert response.status == 500


@given(st.text(max_size=200))
def test_session_decode_survives_anything(value: str) -> None:
    assert SessionMiddleware(secret_key=KEY).decode(value) is None


def test_session_change_inside_a_value_is_saved() -> None:
    app = session_app(SessionMiddleware(secret_key=KEY))
    jar = cookie_of(call(app, "/add"))
    jar = cookie_of(call(app, "/append", jar))
    assert call(app, "/peek", jar).body == b'{"cart":[0,"x"]}'


def test_cookie_is_secure_behind_a_trusted_tls_proxy() -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> Response:
        response = Response("ok")
        response.set_cookie("a", "1")
        return response

    # What the server makes of X-Forwarded-Proto: https from a peer forwarded_allow_ips trusts.
    proxied = asyncio.run(app(Request("GET", "/", scheme="https")))
    assert proxied.headers["set-cookie"] == "a=1; Path=/; Secure; HttpOnly; SameSite=Lax"
    plain = asyncio.run(app(Request("GET", "/")))
    assert plain.headers["set-cookie"] == "a=1; Path=/; HttpOnly; SameSite=Lax"
