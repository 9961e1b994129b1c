"""Typed query parameters and JSON bodies from the handler's signature; errors as JSON or text."""

from __future__ import annotations

import asyncio
import enum
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional, TypedDict

import pytest

from framework import App, HTTPError, JSONResponse, Request, Response
from framework.errorpages import wants_json


def call(
    app: App,
    method: str = "GET",
    target: str = "/",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    return asyncio.run(app(Request(method, target, headers, body=body)))


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Point:
    x: int
    y: int = 0


@dataclass
class Shape:
    name: str
    points: list[Point]
    colour: Colour = Colour.RED
    tags: list[str] = field(default_factory=list)


class Movie(TypedDict):
    title: str
    year: int


def make_app() -> App:
    app = App()

    @app.get("/q")
    async def query(
        request: Request,
        limit: int = 10,
        ratio: float = 0.5,
        flag: bool = False,
        name: str = "x",
        ident: uuid.UUID | None = None,
        colour: Colour = Colour.RED,
        tag: list[str] | None = None,
        ids: Optional[list[int]] = None,  # noqa: UP045 (the spelling users write too)
    ) -> dict[str, Any]:
        return {
            "limit": limit,
            "ratio": ratio,
            "flag": flag,
            "name": name,
            "ident": str(ident) if ident else None,
            "colour": colour.value,
            "tag": tag,
            "ids": ids,
        }

    @app.get("/required")
    async def required(request: Request, page: int) -> str:
        return f"page {page}"

    @app.get("/items/{item_id}")
    async def item(request: Request, item_id: int) -> str:
        return f"item {item_id + 1}"

    @app.post("/shapes")
    async def shapes(request: Request, shape: Shape) -> dict[str, Any]:
        assert isinstance(shape.points[0], Point)
        return {"name": shape.name, "n": len(shape.points), "colour": shape.colour.value}

    @app.post("/movies")
    async def movies(request: Request, movie: Movie) -> str:
        return f"{movie['title']} ({movie['year']})"

    @app.post("/object")
    async def any_object(request: Request, data: dict[str, int]) -> dict[str, int]:
        return data

    @app.get("/text")
    async def text(request: Request) -> str:
        raise HTTPError(409, "taken")

    @app.get("/data")
    async def data(request: Request) -> dict[str, Any]:
        raise HTTPError(409, "taken")

    return app


APP = make_app()


def test_query_parameters_are_converted_by_their_annotations() -> None:
    ident = uuid.uuid4()
    target = (
        f"/q?limit=3&ratio=1.5&flag=yes&name=%C3%A9&ident={ident}&colour=blue"
        "&tag=a&tag=b&ids=1&ids=2"
    )
    response = call(APP, target=target)
    assert response.status == 200
    assert json.loads(response.body) == {
        "limit": 3,
        "ratio": 1.5,
        "flag": True,
        "name": "é",
        "ident": str(ident),
        "colour": "blue",
        "tag": ["a", "b"],
        "ids": [1, 2],
    }


def test_query_defaults_apply_when_absent() -> None:
    body = json.loads(call(APP, target="/q").body)
    assert body == {
        "limit": 10,
        "ratio": 0.5,
        "flag": False,
        "name": "x",
        "ident": None,
        "colour": "red",
        "tag": None,
        "ids": None,
    }


@pytest.mark.parametrize(
    ("target", "loc", "msg"),
    [
        ("/q?limit=abc", ["query", "limit"], "expected an integer"),
        ("/q?ratio=nan", ["query", "ratio"], "expected a number"),
        ("/q?flag=maybe", ["query", "flag"], "expected a boolean (true/false)"),
        ("/q?ident=nope", ["query", "ident"], "expected a UUID"),
        ("/q?colour=green", ["query", "colour"], "expected one of 'red', 'blue'"),
        ("/q?ids=1&ids=x", ["query", "ids", 1], "expected an integer"),
        ("/required", ["query", "page"], "field required"),
        ("/items/abc", ["path", "item_id"], "expected an integer"),
    ],
)
def test_bad_parameters_answer_422_saying_what_was_wrong(
    target: str, loc: list[Any], msg: str
) -> None:
    # The route returns a dict or the client asks for JSON: the body is FastAPI's shape.
    response = call(APP, target=target, headers={"accept": "application/json"})
    assert response.status == 422
    assert response.headers["content-type"] == "application/json"
    (error,) = json.loads(response.body)["detail"]
    assert error["loc"] == loc
    assert error["msg"] == msg


def test_bad_parameter_as_text_for_a_text_client() -> None:
    response = call(APP, target="/required?page=x", headers={"accept": "text/html"})
    assert response.status == 422
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.body == b"query.page: expected an integer"


def test_typed_path_parameter_converts() -> None:
    assert call(APP, target="/items/41").body == b"item 42"


def test_dataclass_body_is_parsed_and_checked() -> None:
    good = {"name": "tri", "points": [{"x": 1}, {"x": 2, "y": 3}], "colour": "blue", "extra": 1}
    response = call(APP, "POST", "/shapes", json.dumps(good).encode())
    assert response.status == 200, response.body
    assert json.loads(response.body) == {"name": "tri", "n": 2, "colour": "blue"}

    bad = {"name": 5, "points": [{"y": "1"}], "colour": "green"}
    response = call(APP, "POST", "/shapes", json.dumps(bad).encode())
    assert response.status == 422
    errors = json.loads(response.body)["detail"]
    assert [e["loc"] for e in errors] == [
        ["body", "name"],
        ["body", "points", 0, "x"],
        ["body", "points", 0, "y"],
        ["body", "colour"],
    ]


def test_typeddict_body_and_bad_json() -> None:
    ok = call(APP, "POST", "/movies", b'{"title": "Alien", "year": 1979}')
    assert ok.body == b"Alien (1979)"
    missing = call(APP, "POST", "/movies", b'{"title": "Alien", "year": "1979"}')
    assert missing.status == 422
    assert b"body.year: expected an integer" in missing.body
    assert call(APP, "POST", "/movies", b"{not json").status == 400
    assert call(APP, "POST", "/movies", b"[1]").status == 422


def test_http_error_is_json_for_json_routes_and_json_clients() -> None:
    assert call(APP, target="/text").body == b"taken"
    as_json = call(APP, target="/text", headers={"accept": "application/json"})
    assert (as_json.status, json.loads(as_json.body)) == (409, {"detail": "taken"})
    route_json = call(APP, target="/data")
    assert (route_json.status, json.loads(route_json.body)) == (409, {"detail": "taken"})
    # No route at all: only the client's Accept decides.
    assert json.loads(call(APP, target="/nope", headers={"accept": "application/json"}).body) == {
        "detail": "Not Found"
    }
    assert call(APP, target="/nope").body == b"Not Found"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", True),
        ("application/problem+json", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        ("application/json, text/plain;q=0.5", True),
        ("text/plain, application/json;q=0.1", False),
        ("application/json;q=bogus", False),
        (",,;;;=,", False),
    ],
)
def test_wants_json(accept: str, expected: bool) -> None:
    assert wants_json(Request("GET", "/", {"accept": accept})) is expected


def test_unusable_annotation_is_refused_when_the_route_is_added() -> None:
    app = App()
    with pytest.raises(TypeError, match=r"cannot take .*complex.* from the query string"):

        @app.get("/")
        async def handler(request: Request, z: complex = 1j) -> str:
            return ""


def test_json_api_example_answers_422_to_a_bad_limit() -> None:
    from examples.json_api import app

    response = call(app, target="/users?limit=abc")
    assert response.status == 422
    assert json.loads(response.body)["detail"][0]["loc"] == ["query", "limit"]
    assert json.loads(call(app, target="/users?limit=0").body) == []
    created = call(app, "POST", "/users", b'{"name": "Ada"}')
    assert created.status == 201
    assert call(app, "POST", "/users", b'{"name": 1}').status == 422


def test_dict_body() -> None:
    assert call(APP, "POST", "/object", b'{"a": 1}').body == b'{"a":1}'
    bad = call(APP, "POST", "/object", b'{"a": "x"}')
    assert bad.status == 422
    assert json.loads(bad.body)["detail"][0]["loc"] == ["body", "a"]


def test_returns_json_reads_the_return_annotation() -> None:
    from framework.errorpages import returns_json

    async def maybe(request: Request) -> dict[str, Any] | None: ...
    async def response(request: Request) -> JSONResponse: ...
    async def shape(request: Request) -> Shape: ...
    async def text(request: Request) -> str | None: ...
    async def plain(request: Request) -> Response: ...
    async def bare(request: Request): ...  # type: ignore[no-untyped-def]

    assert [returns_json(f) for f in (maybe, response, shape, text, plain, bare)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
