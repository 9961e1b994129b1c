"""Path templates and route matching: ``/users/{id:int}`` to a handler and its typed arguments.

A ``Route`` is a plain object (template, handler, methods); a ``Router`` finds the route for a
method and path, or says 404, or 405 with the methods that would have matched. Nothing here
knows about sockets, TLS or HTTP framing.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .decorators import RouteDecorators
from .errors import HTTPError

__all__ = ["CONVERTERS", "Route", "Router"]

# name -> (regex for one value, function turning the matched text into the value)
CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]+", int),
    "float": (r"[0-9]+(?:\.[0-9]+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_]+))?}")


@dataclass
class Route:
    """One path template bound to a handler for some methods.

    Args:
        path: the template, e.g. ``"/users/{user_id:int}"``; parameters are ``{name}`` (one
            path segment) or ``{name:type}`` with type ``str``, ``int``, ``float``, ``uuid`` or
            ``path`` (the rest of the path, slashes included).
        endpoint: ``async def handler(request, **params)``.
        methods: the HTTP methods it answers; ``HEAD`` is implied by ``GET``.
        name: a name for the route (the handler's name by default).
        max_body_size: the most bytes ``await request.body()`` buffers for this route, instead
            of the server's ``max_body_bytes`` (``None``: the server's).

    Example::

        Route("/users/{user_id:int}", get_user, methods=["GET"])
    """

    path: str
    endpoint: Callable[..., Any]
    methods: Iterable[str] = ("GET",)
    name: str | None = None
    max_body_size: int | None = None
    param_names: tuple[str, ...] = field(init=False)
    _regex: re.Pattern[str] | None = field(init=False, repr=False)
    _converters: tuple[Callable[[str], Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"route path must start with '/', not {self.path!r}")
        size = self.max_body_size
        if size is not None and not (isinstance(size, int) and size >= 0):
            raise ValueError(f"max_body_size must be a whole number of bytes, not {size!r}")
        methods = {m.upper() for m in self.methods}
        if "GET" in methods:
            methods.add("HEAD")
        self.methods = frozenset(methods)
        if self.name is None:
            self.name = getattr(self.endpoint, "__name__", None)
        pattern, names, converters, pos = "^", [], [], 0
        for match in _PARAM.finditer(self.path):
            _check_literal(self.path, self.path[pos : match.start()])
            name, kind = match.group(1), match.group(2) or "str"
            if kind not in CONVERTERS:
                raise ValueError(
                    f"unknown parameter type {kind!r} in {self.path!r}; "
                    f"use one of {', '.join(CONVERTERS)}"
                )
            if name in names:
                raise ValueError(f"parameter {name!r} appears twice in {self.path!r}")
            regex, convert = CONVERTERS[kind]
            pattern += re.escape(self.path[pos : match.start()]) + f"(?P<{name}>{regex})"
            names.append(name)
            converters.append(convert)
            pos = match.end()
        _check_literal(self.path, self.path[pos:])
        self.param_names = tuple(names)
        self._converters = tuple(converters)
        self._regex = re.compile(pattern + re.escape(self.path[pos:]) + "$") if names else None

    def url_path(self, **params: Any) -> str:
        """The path this route answers for ``params``: ``/users/7`` for ``user_id=7``.

        Values are percent-encoded (a ``path`` parameter keeps its slashes).

        Raises:
            ValueError: a parameter is missing or extra, or its value would not match.
        """
        names = set(self.param_names)
        if set(params) != names:
            missing, extra = names - set(params), set(params) - names
            raise ValueError(
                f"route {self.name!r} ({self.path}) takes {sorted(names) or 'no parameters'}; "
                + (f"missing {sorted(missing)}" if missing else f"unexpected {sorted(extra)}")
            )

        def fill(match: re.Match[str]) -> str:
            name, kind = match.group(1), match.group(2) or "str"
            text = str(params[name])
            if not re.fullmatch(CONVERTERS[kind][0], text) or text in (".", ".."):
                # "." and ".." would be resolved away as dot-segments before routing.
                raise ValueError(f"{name}={text!r} does not fit {{{name}:{kind}}} in {self.path}")
            return quote(text, safe="/" if kind == "path" else "")

        return _PARAM.sub(fill, self.path)

    @property
    def is_static(self) -> bool:
        """True when the template has no parameters."""
        return self._regex is None

    def match(self, path: str) -> dict[str, Any] | None:
        """The typed parameters if ``path`` fits the template, else ``None``."""
        if self._regex is None:
            return {} if path == self.path else None
        found = self._regex.match(path)
        if found is None:
            return None
        values = found.groups()
        return {
            name: convert(value)
            for name, convert, value in zip(self.param_names, self._converters, values, strict=True)
        }


def _check_literal(path: str, text: str) -> None:
    # A brace outside a well-formed parameter is a typo ("{id", "{id:}", "{1st}"); matched
    # literally it would make a route that silently never fits.
    if "{" in text or "}" in text:
        raise ValueError(
            f"malformed parameter in {path!r} near {text!r}; write {{name}} or {{name:type}} "
            "with a Python identifier as the name"
        )


def require_async(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` itself, once checked to be an ``async def`` function.

    Raises:
        TypeError: it is not one (a handler must be awaitable).
    """
    if not inspect.iscoroutinefunction(endpoint):
        raise TypeError(
            f"handler {getattr(endpoint, '__qualname__', endpoint)!r} must be an async "
            "function (async def)"
        )
    return endpoint


class Router(RouteDecorators):
    """Routes in the order they were added; the first that fits wins.

    Static paths are looked up in a dict; templates are tried in order after them. A router
    made on its own groups routes to include into an app under a prefix.

    Example::

        api = Router()

        @api.get("/users/{user_id:int}")
        async def user(request: Request, user_id: int) -> dict:
            return {"id": user_id}

        app.include(api, prefix="/api")
    """

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes: list[Route] = []
        self._static: dict[str, list[Route]] = {}
        self._dynamic: list[Route] = []
        for route in routes:
            self.add(route)

    def add(self, route: Route) -> Route:
        """Add ``route`` after those already there."""
        self.routes.append(route)
        if route.is_static:
            self._static.setdefault(route.path, []).append(route)
        else:
            self._dynamic.append(route)
        return route

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        *,
        max_body_size: int | None = None,
    ) -> Route:
        """Add a route for ``endpoint``, an async function; the decorators call this."""
        return self.add(Route(path, require_async(endpoint), methods, name, max_body_size))

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called ``name`` for ``params`` (``Route.url_path``).

        Raises:
            LookupError: no route has that name.
            ValueError: the parameters do not fit it.
        """
        for route in self.routes:
            if route.name == name:
                return route.url_path(**params)
        known = ", ".join(sorted({r.name for r in self.routes if r.name})) or "none"
        raise LookupError(f"no route named {name!r}; the names are: {known}")

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route for ``method`` and ``path`` and its parameters.

        Raises:
            HTTPError: 404 when no template fits the path; 405 with an ``Allow`` header when
                one fits but not for this method.
        """
        allowed: set[str] = set()
        for route in self._static.get(path, ()):
            if method in route.methods:
                return route, {}
            allowed.update(route.methods)
        for route in self._dynamic:
            params = route.match(path)
            if params is None:
                continue
            if method in route.methods:
                return route, params
            allowed.update(route.methods)
        if allowed:
            allow = ", ".join(sorted(allowed))
            raise HTTPError(405, "Method Not Allowed", headers={"Allow": allow})
        raise HTTPError(404, "Not Found")

    def __repr__(self) -> str:
        return f"<Router routes={len(self.routes)}>"
