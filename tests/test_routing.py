"""Path templates, typed parameters, and the 404 / 405 answers of ``Router``."""

from __future__ import annotations

import re
import uuid

import pytest

from framework.errors import HTTPError
from framework.routing import Route, Router


async def endpoint(request: object, **params: object) -> str:
    return "ok"


async def other(request: object, **params: object) -> str:
    return "other"


def test_route_static_path_matches_exactly() -> None:
    route = Route("/about", endpoint)
    assert route.is_static
    assert route.match("/about") == {}
    assert route.match("/about/") is None
    assert route.match("/abou") is None


def test_route_str_parameter_is_one_segment() -> None:
    route = Route("/users/{name}", endpoint)
    assert route.param_names == ("name",)
    assert route.match("/users/alice") == {"name": "alice"}
    assert route.match("/users/alice/posts") is None
    assert route.match("/users/") is None


def test_route_int_parameter_is_converted() -> None:
    route = Route("/users/{id:int}", endpoint)
    params = route.match("/users/42")
    assert params == {"id": 42}
    assert type(params["id"]) is int
    assert route.match("/users/abc") is None
    assert route.match("/users/-1") is None


def test_route_float_parameter_is_converted() -> None:
    route = Route("/scale/{x:float}", endpoint)
    assert route.match("/scale/1.5") == {"x": 1.5}
    assert route.match("/scale/2") == {"x": 2.0}
    assert type(route.match("/scale/2")["x"]) is float  # type: ignore[index]
    assert route.match("/scale/x") is None


def test_route_uuid_parameter_is_converted() -> None:
    value = uuid.uuid4()
    route = Route("/items/{u:uuid}", endpoint)
    assert route.match(f"/items/{value}") == {"u": value}
    assert route.match("/items/not-a-uuid") is None


def test_route_path_parameter_takes_the_rest_with_slashes() -> None:
    route = Route("/static/{rest:path}", endpoint)
    assert route.match("/static/css/site.css") == {"rest": "css/site.css"}
    assert route.match("/static/") == {"rest": ""}


def test_route_several_parameters_and_literal_text_between() -> None:
    route = Route("/a/{x:int}/b/{y}.json", endpoint)
    assert route.match("/a/3/b/report.json") == {"x": 3, "y": "report"}
    assert route.match("/a/3/b/report.xml") is None


def test_route_literal_text_is_not_a_regex() -> None:
    route = Route("/v1.0/{x}", endpoint)
    assert route.match("/v1.0/a") == {"x": "a"}
    assert route.match("/v1x0/a") is None


def test_route_get_implies_head() -> None:
    assert Route("/", endpoint, methods=["get"]).methods == {"GET", "HEAD"}
    assert Route("/", endpoint, methods=["POST"]).methods == {"POST"}


def test_route_name_defaults_to_the_handler_name() -> None:
    assert Route("/", endpoint).name == "endpoint"
    assert Route("/", endpoint, name="home").name == "home"


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("users/{id}", ["must start with '/'", "users/{id}"]),
        ("/users/{id:integer}", ["unknown parameter type 'integer'", "int"]),
        ("/a/{x}/b/{x}", ["'x' appears twice"]),
        ("/users/{id", ["malformed parameter", "'/users/{id'"]),
        ("/users/{id:}", ["malformed parameter"]),
        ("/users/{1st}", ["malformed parameter"]),
        ("/users/}", ["malformed parameter"]),
    ],
)
def test_route_bad_template_raises_value_error_naming_the_problem(
    template: str, words: list[str]
) -> None:
    with pytest.raises(ValueError, match=re.escape(words[0])) as info:
        Route(template, endpoint)
    for word in words:
        assert word in str(info.value)


def test_router_resolves_typed_kwargs() -> None:
    router = Router([Route("/users/{user_id:int}", endpoint)])
    route, params = router.resolve("GET", "/users/7")
    assert route.endpoint is endpoint
    assert params == {"user_id": 7}


def test_router_unknown_path_is_404() -> None:
    router = Router([Route("/users/{user_id:int}", endpoint)])
    with pytest.raises(HTTPError) as info:
        router.resolve("GET", "/users/seven")
    assert info.value.status == 404
    assert info.value.headers == []


def test_router_wrong_method_is_405_with_allow() -> None:
    router = Router(
        [
            Route("/items", endpoint, methods=["GET"]),
            Route("/items", other, methods=["POST"]),
            Route("/items/{id:int}", endpoint, methods=["DELETE"]),
        ]
    )
    with pytest.raises(HTTPError) as info:
        router.resolve("PUT", "/items")
    assert info.value.status == 405
    assert dict(info.value.headers) == {"Allow": "GET, HEAD, POST"}
    with pytest.raises(HTTPError) as info:
        router.resolve("GET", "/items/3")
    assert info.value.status == 405
    assert dict(info.value.headers) == {"Allow": "DELETE"}


def test_router_head_is_served_by_the_get_route() -> None:
    router = Router([Route("/", endpoint)])
    route, _ = router.resolve("HEAD", "/")
    assert route.endpoint is endpoint


def test_router_first_added_route_wins() -> None:
    router = Router([Route("/x/{a}", endpoint), Route("/x/{b}", other)])
    route, params = router.resolve("GET", "/x/1")
    assert route.endpoint is endpoint
    assert params == {"a": "1"}


def test_router_static_and_dynamic_routes_share_a_path_for_different_methods() -> None:
    router = Router([Route("/x/{a}", endpoint, methods=["POST"]), Route("/x/me", other)])
    assert router.resolve("GET", "/x/me")[0].endpoint is other
    assert router.resolve("POST", "/x/me") == (router.routes[0], {"a": "me"})


def test_router_repr_counts_routes() -> None:
    assert repr(Router([Route("/", endpoint)])) == "<Router routes=1>"
