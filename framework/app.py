"""``App``: route decorators, middleware, exception handlers and startup/shutdown hooks.

An ``App`` is itself the server's handler, ``async (Request) -> Response``: it resolves the
route, calls the handler with its typed path parameters, turns the return value into a
``Response`` and errors into responses. It is also an ASGI 3 application,
``async (scope, receive, send)``, so uvicorn, hypercorn or Granian can serve it. It knows
nothing of sockets, TLS or h11.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar, overload

from . import asgi
from .decorators import F, RouteDecorators
from .errorpages import error_response, returns_json, wants_json
from .errors import ClientDisconnect, HTTPError
from .messages import (
    FileResponse,
    Hook,
    JSONResponse,
    RedirectResponse,
    Request,
    Response,
    State,
)
from .mounts import Mount, check_prefix
from .params import Binder, make_binder
from .routing import Route, Router, require_async
from .staticfiles import StaticFiles
from .websocket import websocket_endpoint

__all__ = [
    "HSTS_MAX_AGE",
    "App",
    "CallNext",
    "ExceptionHandler",
    "Lifespan",
    "Middleware",
    "hsts_value",
    "to_response",
]

log = logging.getLogger("framework.app")

E = TypeVar("E", bound=BaseException)
#: What a middleware calls to go on: ``await call_next(request)`` gives the response.
CallNext: TypeAlias = Callable[[Request], Awaitable[Response]]
#: ``async def mw(request, call_next) -> Response``.
Middleware: TypeAlias = Callable[[Request, CallNext], Awaitable[Response]]
#: ``async def h(request, exc) -> Response | str | dict | ...``.
ExceptionHandler: TypeAlias = Callable[[Request, Any], Awaitable[Any]]
#: ``lifespan(app)``: an async context manager around the app's life; it may yield a mapping
#: whose items are put into ``app.state``.
Lifespan: TypeAlias = Callable[
    ["App"], contextlib.AbstractAsyncContextManager[Mapping[str, Any] | None]
]

_OCTET_STREAM = "application/octet-stream"


def to_response(value: Any) -> Response:
    """Turn a handler's return value into a ``Response``.

    ``str`` becomes ``text/plain; charset=utf-8``, ``bytes`` ``application/octet-stream``,
    ``dict``/``list`` JSON, ``None`` an empty 204, and a ``Response`` stays as it is.

    Raises:
        TypeError: any other type.
    """
    if isinstance(value, Response):
        return value
    if isinstance(value, str):
        return Response(value)
    if isinstance(value, dict | list):
        return JSONResponse(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(bytes(value), media_type=_OCTET_STREAM)
    if value is None:
        return Response(b"", status=204)
    raise TypeError(
        f"a handler returned {type(value).__name__}; return str, bytes, dict, list, None "
        "or a Response"
    )


#: ``max-age`` of ``App(hsts=True)``: one year, the least hstspreload.org accepts and what
#: OWASP advises.
HSTS_MAX_AGE = 31_536_000


def hsts_value(hsts: bool | int | str) -> str | None:
    """The ``Strict-Transport-Security`` value ``App(hsts=...)`` sends, or ``None`` for none.

    ``True`` is one year (``max-age=31536000``), an ``int`` that many seconds, and a ``str``
    is sent as it is (``"max-age=63072000; includeSubDomains; preload"``).

    Raises:
        ValueError: a negative ``max-age``, or a string that does not start with ``max-age=``.
    """
    if hsts is False:
        return None
    if hsts is True:
        return f"max-age={HSTS_MAX_AGE}"
    if isinstance(hsts, int):
        if hsts < 0:
            raise ValueError(f"hsts max-age must be 0 or more seconds, not {hsts}")
        return f"max-age={hsts}"
    if isinstance(hsts, str):
        value = hsts.strip()
        head = value.split(";")[0].strip().lower()
        if not head.startswith("max-age=") or not head[8:].strip('"').isdigit() or "\n" in value:
            raise ValueError(
                f"hsts must start with max-age=SECONDS (RFC 6797), as in "
                f"'max-age=31536000; includeSubDomains', not {hsts!r}"
            )
        return value
    raise TypeError(f"hsts must be a bool, a number of seconds or a str, not {type(hsts).__name__}")


class App(RouteDecorators):
    """A web application: routes, middleware, exception handlers and lifecycle hooks.

    Args:
        routes: routes to start with.
        hsts: add ``Strict-Transport-Security`` to every response sent over HTTPS (never
            over plain HTTP, as RFC 6797 section 7.2 requires): ``True`` for one year, a
            number of seconds, or the header's whole value. Off by default, as in Caddy,
            nginx and uvicorn: a browser that saw it refuses plain HTTP to the host for that
            long, which on ``localhost`` covers every other local server too. A handler's own
            ``Strict-Transport-Security`` header is left as it is.
        redirect_slashes: answer a path that matches no route, but would with its trailing
            slash added or removed, with a ``308`` redirect there (on by default, as in
            Starlette and Django).
        lifespan: an async context manager factory run around the app's life, entered
            before the startup hooks and left after the shutdown hooks; what it yields (a
            mapping, or ``None``) is merged into ``app.state``.

    Example::

        app = App()

        @app.get("/users/{user_id:int}")
        async def user(request: Request, user_id: int) -> dict:
            return {"id": user_id}
    """

    def __init__(
        self,
        routes: Iterable[Route] = (),
        *,
        hsts: bool | int | str = False,
        redirect_slashes: bool = True,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.router = Router(routes)
        #: Resources shared by the whole app (a database pool, a client): ``app.state.db``.
        self.state = State()
        self.lifespan = lifespan
        self._lifespan_stack: contextlib.AsyncExitStack | None = None
        self.mounts: list[Mount] = []
        self.hsts = hsts_value(hsts)
        self.redirect_slashes = redirect_slashes
        self._plans: dict[int, tuple[Route, Binder | None, bool]] = {}
        self.middleware_stack: list[Middleware] = []
        self.exception_handlers: dict[type[BaseException], ExceptionHandler] = {}
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self._entry: CallNext = self._dispatch

    # --- building -------------------------------------------------------------------------

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        *,
        max_body_size: int | None = None,
    ) -> Route:
        """Add a route; the decorators below call this.

        ``max_body_size`` raises (or lowers) the most bytes ``await request.body()`` buffers
        for this route, from the server's ``max_body_bytes`` (1 MiB); above it, 413.
        """
        route = Route(path, require_async(endpoint), methods, name, max_body_size)
        # Read the signature now, so a parameter that cannot come from a request is a
        # TypeError at import time, not a 500 later.
        self._plans[id(route)] = (route, *plan_route(route))
        return self.router.add(route)

    def static(self, prefix: str, directory: str | os.PathLike[str], **options: Any) -> StaticFiles:
        """Serve the files under ``directory`` at ``prefix``, as ``StaticFiles`` does.

        ``options`` go to ``StaticFiles`` (``index=``, ``dotfiles=``, ``precompressed=``,
        ``cache_control=``). Returns it.

        Example::

            app.static("/assets", "public")     # /assets/app.css -> public/app.css
        """
        served = StaticFiles(directory, **options)
        prefix = prefix.rstrip("/")

        async def static_files(request: Request, path: str = "") -> Response:
            return await served.response(request)

        async def static_root(request: Request) -> Response:
            # The directory itself, as nginx answers it: to its path with the final "/".
            query = request.query_string.decode("latin-1")
            return RedirectResponse(prefix + "/" + (f"?{query}" if query else ""), status=308)

        self.add_route(f"{prefix}/{{path:path}}", static_files, ("GET",), f"static:{prefix}")
        if prefix:
            self.add_route(prefix, static_root, ("GET",), f"static:{prefix}:root")
        return served

    def websocket(self, path: str, name: str | None = None, **options: Any) -> Callable[[F], F]:
        """Decorate a WebSocket handler, ``async def chat(ws: WebSocket, **params)``.

        ``options`` are ``WebSocket``'s limits (``max_message_size``, ``queue_size``,
        ``ping_interval``, ``ping_timeout``, ``close_timeout``).
        """

        def decorate(endpoint: F) -> F:
            if not inspect.iscoroutinefunction(endpoint):
                name_ = getattr(endpoint, "__qualname__", endpoint)
                raise TypeError(f"WebSocket handler {name_!r} must be an async function")
            self.add_route(path, websocket_endpoint(endpoint, **options), ("GET",), name)
            return endpoint

        return decorate

    def middleware(self, func: Middleware) -> Middleware:
        """Decorate ``async def mw(request, call_next) -> Response``; the first added is outermost.

        Example::

            @app.middleware
            async def timing(request, call_next):
                response = await call_next(request)
                response.headers["x-handled-by"] = "framework"
                return response
        """
        self.middleware_stack.append(func)
        self._build_stack()
        return func

    def exception_handler(
        self, exc_type: type[E]
    ) -> Callable[[Callable[[Request, E], Awaitable[Any]]], Callable[[Request, E], Awaitable[Any]]]:
        """Decorate ``async def h(request, exc: E)`` to answer exceptions of ``exc_type``.

        The most specific registered type wins; its return value is converted like a handler's.
        """

        def decorate(
            func: Callable[[Request, E], Awaitable[Any]],
        ) -> Callable[[Request, E], Awaitable[Any]]:
            self.exception_handlers[exc_type] = func
            return func

        return decorate

    def include(self, router: Router, prefix: str = "") -> None:
        """Add every route of ``router`` under ``prefix``: ``/users`` at ``/api`` is ``/api/users``.

        Raises:
            ValueError: ``prefix`` is not a literal path like ``/api``.
        """
        check_prefix(prefix, empty_ok=True)
        for route in router.routes:
            self.add_route(
                prefix + route.path,
                route.endpoint,
                route.methods,
                route.name,
                max_body_size=route.max_body_size,
            )

    def mount(self, prefix: str, app: Any, name: str | None = None) -> None:
        """Answer every path under ``prefix`` with ``app``: another ``App``, a ``Handler``
        ``async (request) -> Response``, or an ASGI app ``async (scope, receive, send)``.

        Routes of this app are tried first. The mounted app's startup and shutdown run with
        this one's; ``url_for("name:route")`` reaches its routes.

        Raises:
            ValueError: ``prefix`` is not a literal path like ``/admin``.
        """
        handler = (
            app
            if asgi.interface_of(app) != "asgi"
            else asgi.as_handler(app, "asgi", root_path=check_prefix(prefix, empty_ok=False))
        )
        self.mounts.append(Mount(prefix, handler, name))

    def url_for(self, name: str, /, **params: Any) -> str:
        """The path of the route called ``name`` for ``params``: ``url_for("user", user_id=7)``.

        A route of an app mounted with ``name="admin"`` is ``"admin:route"``.

        Raises:
            LookupError: no route by that name.
            ValueError: the parameters do not fit the route's template.
        """
        mount_name, sep, rest = name.partition(":")
        if sep:
            for mount in self.mounts:
                if mount.name == mount_name:
                    return mount.url_path_for(rest, **params)
            raise LookupError(f"no app mounted with name {mount_name!r}")
        return self.router.url_path_for(name, **params)

    def on_startup(self, func: Hook) -> Hook:
        """Decorate a coroutine function run before the first request is served."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: Hook) -> Hook:
        """Decorate a coroutine function run after the last response."""
        self.shutdown_hooks.append(func)
        return func

    async def startup(self) -> None:
        """Enter the ``lifespan``, then run the startup hooks in order."""
        if self.lifespan is not None:
            stack = contextlib.AsyncExitStack()
            values = await stack.enter_async_context(self.lifespan(self))
            self._lifespan_stack = stack
            if values:
                self.state.update(values)
        for mount in self.mounts:
            if hasattr(mount.handler, "startup"):
                await mount.handler.startup()
        for hook in self.startup_hooks:
            await hook()

    async def shutdown(self) -> None:
        """Run the shutdown hooks in reverse order (last set up, first torn down), then
        leave the ``lifespan``."""
        try:
            for hook in reversed(self.shutdown_hooks):
                await hook()
            for mount in reversed(self.mounts):
                if hasattr(mount.handler, "shutdown"):
                    await mount.handler.shutdown()
        finally:
            stack, self._lifespan_stack = self._lifespan_stack, None
            if stack is not None:
                await stack.aclose()

    def _build_stack(self) -> None:
        call_next: CallNext = self._dispatch
        for mw in reversed(self.middleware_stack):
            call_next = _bind(mw, call_next)
        self._entry = call_next

    # --- serving --------------------------------------------------------------------------

    @overload
    async def __call__(self, request: Request) -> Response: ...

    @overload
    async def __call__(
        self, request: asgi.Scope, receive: asgi.Receive, send: asgi.Send
    ) -> None: ...

    async def __call__(
        self,
        request: Request | asgi.Scope,
        receive: asgi.Receive | None = None,
        send: asgi.Send | None = None,
    ) -> Response | None:
        """Answer ``request`` (the server's handler interface), or an ASGI scope.

        Called as ``await app(scope, receive, send)`` it is an ASGI 3 application: ``http``
        scopes are answered as requests are here, ``lifespan`` runs the startup and shutdown
        hooks.
        """
        if type(request) is Request or receive is None:
            return await self._answer(request)  # type: ignore[arg-type]
        assert send is not None, "an ASGI call takes scope, receive and send"
        await asgi.run_asgi(
            self._answer,
            request,  # type: ignore[arg-type]
            receive,
            send,
            startup=self.startup,
            shutdown=self.shutdown,
        )
        return None

    async def _answer(self, request: Request) -> Response:
        try:
            response = await self._entry(request)
        except Exception as exc:
            # Raised by a middleware (handlers' errors were answered in _dispatch).
            response = await self._handle_exception(request, exc)
        if isinstance(response, FileResponse):  # one a middleware made
            response = response.for_request(request)
        if self.hsts is not None and request.tls is not None:
            response.headers.setdefault("strict-transport-security", self.hsts)
        if response.cookies:
            # "https" from the connection, or from a trusted proxy that terminated TLS.
            response.write_cookies(https=request.scheme == "https")
        form = request.state.get("_form") if request.state else None
        if form is not None:
            # Uploaded files' temporary files go now, not at collection; background calls
            # may still read them, so then after those.
            if response.background_tasks:
                response.background(form.close)
            else:
                await form.close()
        return response

    async def _dispatch(self, request: Request) -> Response:
        if request.path == "*":
            return self._options_asterisk()
        route: Route | None = None
        try:
            try:
                route, params = self.router.resolve(request.method, request.path)
            except HTTPError as exc:
                if exc.status != 404:
                    raise
                for mount in self.mounts:
                    rest = mount.rest_of(request.path)
                    if rest is not None:
                        return await mount.answer(request, rest)
                redirect = self._slash_redirect(request)
                if redirect is None:
                    raise
                return redirect
            request.path_params = params
            if route.max_body_size is not None:
                request.max_body_size = route.max_body_size
            plan = self._plans.get(id(route))
            if plan is None or plan[0] is not route:
                plan = self._plans[id(route)] = (route, *plan_route(route))
            if plan[1] is not None:
                params = await plan[1](request, params)
            result = await route.endpoint(request, **params)
            if type(result) is Response:
                return result
            response = to_response(result)
            if isinstance(response, FileResponse):
                # Conditional and Range headers answered before any middleware sees it, so
                # that compression sees the 206 or 304 it must leave alone.
                return response.for_request(request)
            return response
        except Exception as exc:
            plan = self._plans.get(id(route)) if route is not None else None
            as_json = plan is not None and plan[2]
            return await self._handle_exception(request, exc, as_json=as_json)

    def _slash_redirect(self, request: Request) -> Response | None:
        # /users/1/ for /users/1 (and back): 308 keeps the method and body, as Starlette's
        # redirect_slashes does (it sends 307).
        if not self.redirect_slashes or request.path == "/":
            return None
        path = request.path
        other = path[:-1] if path.endswith("/") else path + "/"
        try:
            self.router.resolve(request.method, other)
        except HTTPError as exc:
            if exc.status == 404:
                return None
        raw = request.raw_path.decode("latin-1")
        target = raw[:-1] if raw.endswith("/") else raw + "/"
        if target.startswith("//"):
            return None  # "//host" in Location would send the client to another site
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return RedirectResponse(target, status=308)

    def _options_asterisk(self) -> Response:
        # "OPTIONS *" asks about the server itself (RFC 9110 9.3.7); the server lets no other
        # method reach the app with "*". The answer: every method some route takes.
        methods = sorted({method for route in self.router.routes for method in route.methods})
        return Response(b"", status=200, headers={"Allow": ", ".join(methods)})

    async def _handle_exception(
        self, request: Request, exc: Exception, *, as_json: bool = False
    ) -> Response:
        handler = self._find_handler(type(exc))
        if handler is not None:
            try:
                return to_response(await handler(request, exc))
            except Exception:
                log.exception("exception handler for %s failed", type(exc).__name__)
                return Response("Internal Server Error", status=500)
        if isinstance(exc, HTTPError):
            return error_response(exc, as_json=as_json or wants_json(request))
        if isinstance(exc, ClientDisconnect):
            # The peer's doing, not a bug: no traceback, and nobody to answer.
            log.debug("%s %s ended: %s", request.method, request.path, exc.reason)
            return Response("Client Closed Request", status=400)
        log.error(
            "unhandled error in handler for %s %s", request.method, request.path, exc_info=exc
        )
        return Response("Internal Server Error", status=500)

    def _find_handler(self, exc_type: type[BaseException]) -> ExceptionHandler | None:
        if not self.exception_handlers:
            return None
        for cls in exc_type.__mro__:
            if cls in self.exception_handlers:
                return self.exception_handlers[cls]
        return None

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8443,
        *,
        certfile: str | None = None,
        keyfile: str | None = None,
        tls: bool = True,
        **options: Any,
    ) -> None:
        """Serve this app until SIGINT/SIGTERM (HTTPS on the development CA by default).

        Takes the same options as ``framework.serve``.
        """
        # The one upward import of this layer: a convenience entry point for scripts.
        from .deploy import serve

        serve(self, host=host, port=port, certfile=certfile, keyfile=keyfile, tls=tls, **options)

    def __repr__(self) -> str:
        return f"<App routes={len(self.router.routes)} middleware={len(self.middleware_stack)}>"


def plan_route(route: Route) -> tuple[Binder | None, bool]:
    """What a route needs per request, worked out once: its argument binder and JSON errors."""
    # The template's converters are the types themselves (int, float, uuid.UUID, str).
    converted = dict(zip(route.param_names, route._converters, strict=True))
    return make_binder(route.endpoint, converted), returns_json(route.endpoint)


def _bind(mw: Middleware, call_next: CallNext) -> CallNext:
    async def call(request: Request) -> Response:
        return to_response(await mw(request, call_next))

    return call
