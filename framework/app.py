"""``App``: route decorators, middleware, exception handlers and startup/shutdown hooks.

An ``App`` is itself the server's handler, ``async (Request) -> Response``: it resolves the
route, calls the handler with its typed path parameters, turns the return value into a
``Response`` and errors into responses. It is also an ASGI 3 application,
``async (scope, receive, send)``, so uvicorn, hypercorn or Granian can serve it. It knows
nothing of sockets, TLS or h11.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

from . import asgi
from .errors import ClientDisconnect, HTTPError
from .messages import Hook, JSONResponse, Request, Response
from .routing import Route, Router
from .websocket import websocket_endpoint

__all__ = ["HSTS_MAX_AGE", "App", "CallNext", "Middleware", "hsts_value", "to_response"]

log = logging.getLogger("framework.app")

F = TypeVar("F", bound=Callable[..., Any])
CallNext = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[Request, CallNext], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Any]]

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


def _error_response(exc: HTTPError) -> Response:
    detail = exc.detail if exc.detail is not None else Response(b"", exc.status).reason
    if exc.status in (204, 304) or exc.status < 200:
        return Response(b"", exc.status, exc.headers)
    return Response(detail, exc.status, exc.headers)


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


class App:
    """A web application: routes, middleware, exception handlers and lifecycle hooks.

    Args:
        routes: routes to start with.
        hsts: add ``Strict-Transport-Security`` to every response sent over HTTPS (never
            over plain HTTP, as RFC 6797 section 7.2 requires): ``True`` for one year, a
            number of seconds, or the header's whole value. Off by default, as in Caddy,
            nginx and uvicorn: a browser that saw it refuses plain HTTP to the host for that
            long, which on ``localhost`` covers every other local server too. A handler's own
            ``Strict-Transport-Security`` header is left as it is.

    Example::

        app = App()

        @app.get("/users/{user_id:int}")
        async def user(request: Request, user_id: int) -> dict:
            return {"id": user_id}
    """

    def __init__(self, routes: Iterable[Route] = (), *, hsts: bool | int | str = False) -> None:
        self.router = Router(routes)
        self.hsts = hsts_value(hsts)
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
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"handler {getattr(endpoint, '__qualname__', endpoint)!r} must be an async "
                "function (async def)"
            )
        return self.router.add(Route(path, endpoint, methods, name, max_body_size))

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        *,
        max_body_size: int | None = None,
    ) -> Callable[[F], F]:
        """Decorate a handler for ``path`` and ``methods``; the handler is returned unchanged.

        Example::

            @app.route("/upload", ["POST", "PUT"], max_body_size=50 * 1024 * 1024)
        """

        def decorate(endpoint: F) -> F:
            self.add_route(path, endpoint, methods, name, max_body_size=max_body_size)
            return endpoint

        return decorate

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

    def get(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a GET handler (HEAD is served by it too, without the body)."""
        return self.route(path, ("GET",), name, max_body_size=max_body_size)

    def post(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a POST handler."""
        return self.route(path, ("POST",), name, max_body_size=max_body_size)

    def put(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a PUT handler."""
        return self.route(path, ("PUT",), name, max_body_size=max_body_size)

    def patch(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a PATCH handler."""
        return self.route(path, ("PATCH",), name, max_body_size=max_body_size)

    def delete(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a DELETE handler."""
        return self.route(path, ("DELETE",), name, max_body_size=max_body_size)

    def head(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate a HEAD handler (needed only when it differs from the GET handler)."""
        return self.route(path, ("HEAD",), name, max_body_size=max_body_size)

    def options(
        self, path: str, name: str | None = None, *, max_body_size: int | None = None
    ) -> Callable[[F], F]:
        """Decorate an OPTIONS handler."""
        return self.route(path, ("OPTIONS",), name, max_body_size=max_body_size)

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
        self, exc_type: type[BaseException]
    ) -> Callable[[ExceptionHandler], ExceptionHandler]:
        """Decorate ``async def h(request, exc)`` to answer exceptions of ``exc_type``.

        The most specific registered type wins; its return value is converted like a handler's.
        """

        def decorate(func: ExceptionHandler) -> ExceptionHandler:
            self.exception_handlers[exc_type] = func
            return func

        return decorate

    def on_startup(self, func: Hook) -> Hook:
        """Decorate a coroutine function run before the first request is served."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: Hook) -> Hook:
        """Decorate a coroutine function run after the last response."""
        self.shutdown_hooks.append(func)
        return func

    async def startup(self) -> None:
        """Run the startup hooks in order."""
        for hook in self.startup_hooks:
            await hook()

    async def shutdown(self) -> None:
        """Run the shutdown hooks in reverse order (last set up, first torn down)."""
        for hook in reversed(self.shutdown_hooks):
            await hook()

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
        if self.hsts is not None and request.tls is not None:
            response.headers.setdefault("strict-transport-security", self.hsts)
        return response

    async def _dispatch(self, request: Request) -> Response:
        if request.path == "*":
            return self._options_asterisk()
        try:
            route, params = self.router.resolve(request.method, request.path)
            request.path_params = params
            if route.max_body_size is not None:
                request.max_body_size = route.max_body_size
            result = await route.endpoint(request, **params)
            if type(result) is Response:
                return result
            return to_response(result)
        except Exception as exc:
            return await self._handle_exception(request, exc)

    def _options_asterisk(self) -> Response:
        # "OPTIONS *" asks about the server itself (RFC 9110 9.3.7); the server lets no other
        # method reach the app with "*". The answer: every method some route takes.
        methods = sorted({method for route in self.router.routes for method in route.methods})
        return Response(b"", status=200, headers={"Allow": ", ".join(methods)})

    async def _handle_exception(self, request: Request, exc: Exception) -> Response:
        handler = self._find_handler(type(exc))
        if handler is not None:
            try:
                return to_response(await handler(request, exc))
            except Exception:
                log.exception("exception handler for %s failed", type(exc).__name__)
                return Response("Internal Server Error", status=500)
        if isinstance(exc, HTTPError):
            return _error_response(exc)
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


def _bind(mw: Middleware, call_next: CallNext) -> CallNext:
    async def call(request: Request) -> Response:
        return to_response(await mw(request, call_next))

    return call
