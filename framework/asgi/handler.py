"""``ASGIHandler``: an ASGI 3 application served as the server's ``Handler``.

The app runs in the request's own task, as uvicorn runs it, stepped from here: the handler
steps it until it has started its response (or ended). An app that goes on after that
(streaming its body, or at work after its response) goes on in the same task, through
``Response.on_end``, while the server sends the response from a task of its own. ``send``
turns the app's messages into a ``Response``: a whole one when the body is complete by then
(the common case, sent on the server's fast path), else one whose body iterator yields each
piece as the app sends it, with the same back pressure, limits,
timeouts, access log and drain as a native handler. ``receive`` reads the request body from
the server's ``BodyQueue`` and says ``http.disconnect`` once the client has gone or the
response is complete. Misuse of the protocol by the app (a body before the start, a message
after the end, returning without answering) is one log line, and a 500 when nothing was sent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Literal

from .. import limits
from ..headers import Headers
from ..messages import Request, Response
from ..transport import BodyQueue
from ..websocket.handshake import is_websocket_request, refusal
from .lifespan import Lifespan
from .scope import ASGIApp, Message, http_scope
from .websocket import serve_websocket, websocket_scope

__all__ = ["ASGIHandler"]

log = logging.getLogger("framework.asgi")

# What send() has been given so far.
_WAITING, _STARTED, _COMPLETE = 0, 1, 2
# Body bytes the app may send ahead of the connection before its send() waits: the
# response's share of back pressure, beside the transport's own buffer.
SEND_AHEAD_BYTES = limits.WRITE_CHUNK_BYTES
_DISCONNECT: Message = {"type": "http.disconnect"}
_FRESH: Any = object()  # the app's coroutine has not been stepped yet


class _Truncated(ConnectionAbortedError):
    """The app failed or stopped after its response began: the connection is cut."""


class _Misuse(RuntimeError):
    """The app broke the ASGI HTTP protocol (raised from ``send``)."""


class _Cycle:
    """One request's exchange with the app: the two callables it gets, and the response."""

    __slots__ = (
        "request",
        "source",
        "state",
        "status",
        "headers",
        "chunks",
        "buffered",
        "ended",
        "streamed",
        "bodiless",
        "space",
        "gone",
        "body_read",
        "disconnect",
        "error",
        "app",
        "pending",
        "waiter",
        "consumer",
    )

    def __init__(self, request: Request) -> None:
        self.request = request
        self.source = request.body_source
        self.state = _WAITING
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.ended = False  # the app returned or raised
        self.streamed = False  # sent chunked: no Content-Length, or more than one message
        self.bodiless = False  # a status that has no body (1xx, 204, 304): what is sent is dropped
        self.space: asyncio.Future[None] | None = None  # send() waits on it
        self.gone = False  # nobody reads the response any more
        self.body_read = False
        self.disconnect: asyncio.Future[None] | None = None  # receive() waits on it
        self.error: str | None = None  # why the response cannot be finished
        self.app: Coroutine[Any, Any, Any] | None = None  # the app's run, stepped from here
        self.pending: Any = _FRESH  # what the app's coroutine waits on since its last step
        self.waiter: asyncio.Future[None] | None = None  # the stepping task waits on it
        self.consumer: asyncio.Future[None] | None = None  # the body iterator waits on it

    # --- the app's two callables ------------------------------------------------------------

    async def receive(self) -> Message:
        if not self.body_read:
            source = self.source
            if source is None:
                self.body_read = True
                return {
                    "type": "http.request",
                    "body": await self.request.body(),
                    "more_body": False,
                }
            try:
                chunk = await source.read_chunk()
            except ConnectionError:
                self.body_read = True
                return _DISCONNECT
            if not chunk:
                self.body_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            more = True
            if isinstance(source, BodyQueue) and source.is_complete and not source.buffered:
                self.body_read = more = False
            return {"type": "http.request", "body": chunk, "more_body": more}
        # The body is all read: the next event is the end of the exchange (uvicorn's
        # behaviour): the client going away, or the response being complete.
        if self.state is not _COMPLETE and not self.gone:
            if self.disconnect is None:
                self.disconnect = asyncio.get_running_loop().create_future()
                if isinstance(self.source, BodyQueue):
                    self.source.on_lost(self.lost)
            await asyncio.shield(self.disconnect)
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if self.state is not _STARTED:
                self._misuse(kind)
            if self.gone:
                return  # ASGI 2.3: a send after the client left is ignored
            body = message.get("body", b"")
            if body and not self.bodiless:
                self.chunks.append(body)
                self.buffered += len(body)
            if not message.get("more_body", False):
                self.state = _COMPLETE
                if self.disconnect is not None:
                    self._wake_receiver()
            else:
                self.streamed = True
            # Whoever waits for what was sent (tested first: nobody, in the common case).
            if self.waiter is not None:
                self._wake_stepper()
            if self.consumer is not None:
                self._wake_consumer()
            if self.buffered > SEND_AHEAD_BYTES and self.state is _STARTED and not self.gone:
                self.space = asyncio.get_running_loop().create_future()
                await self.space
        elif kind == "http.response.start":
            if self.state is not _WAITING:
                self._misuse(kind)
            self.status = status = message["status"]
            # Names lower-cased as the server keeps them; values as given (ASGI: bytes).
            headers = self.headers = [(k.lower(), v) for k, v in message.get("headers", ())]
            self.state = _STARTED
            # Framing as uvicorn and hypercorn choose it: without a Content-Length the body
            # is chunked, however it is sent. A status without a body gets none.
            if status < 200 or status == 204 or status == 304:
                self.bodiless = True
            else:
                for name, _ in headers:
                    if name == b"content-length":
                        break
                else:
                    self.streamed = True
            if self.waiter is not None:
                self._wake_stepper()
        else:
            raise _Misuse(f"unknown ASGI message type {kind!r} for an http scope")

    def _misuse(self, kind: str) -> None:
        if self.state is _WAITING:
            why = f"sent {kind!r} before 'http.response.start'"
        elif self.state is _COMPLETE:
            why = f"sent {kind!r} after the response was complete"
        else:
            why = f"sent {kind!r} twice"
        raise _Misuse(why)

    # --- the server's side ------------------------------------------------------------------

    def response(self) -> Response:
        """What the handler returns, once the app has started its response or ended.

        A body with a Content-Length sent in one message is a whole response; any other is
        streamed (chunked without a Content-Length), as uvicorn frames it, even if every
        piece has arrived by now.
        """
        if self.state is _WAITING:  # the app ended without starting a response
            return Response("Internal Server Error", status=500)
        response = Response.__new__(Response)
        response.status = self.status
        headers = self.headers
        # A bodiless status goes the streamed way too: the whole-response writer would add a
        # Content-Length, which a 204 or 304 must not carry (RFC 9110 8.6).
        if self.state is _COMPLETE and not self.streamed and not self.bodiless:
            body = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
            self.chunks.clear()
            self.buffered = 0
            # A Content-Length the app gave that matches is left to the server to write,
            # so the response takes its fast path.
            length = b"%d" % len(body)
            if (b"content-length", length) in headers:
                headers = [h for h in headers if h[0] != b"content-length"]
            response.body = body
        else:
            response.body = b""
            response.body_iterator = self._body()
        response.headers = Headers.from_raw(headers)
        return response

    async def _body(self) -> AsyncIterator[bytes]:
        chunks = self.chunks
        try:
            while True:
                if chunks:
                    chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                    chunks.clear()
                    self.buffered = 0
                    self._wake_sender()
                    yield chunk
                elif self.error is not None:
                    raise _Truncated(self.error)
                elif self.state is _COMPLETE:
                    return
                else:
                    self.consumer = asyncio.get_running_loop().create_future()
                    await self.consumer
        finally:
            if self.state is not _COMPLETE or chunks:
                self.lost()

    def _wake_stepper(self) -> None:
        # Sent from another task of the app's, while the task stepping the app waits.
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_consumer(self) -> None:
        waiter, self.consumer = self.consumer, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_sender(self) -> None:
        waiter, self.space = self.space, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_receiver(self) -> None:
        if self.disconnect is not None and not self.disconnect.done():
            self.disconnect.set_result(None)

    def lost(self) -> None:
        """The client went away (or the server stopped reading the body): release the app."""
        self.gone = True
        self._wake_sender()
        self._wake_receiver()

    # --- the app's end ----------------------------------------------------------------------

    def finished(self, exc: BaseException | None) -> None:
        """The app returned (``exc`` is ``None``) or raised."""
        if exc is not None or self.state is not _COMPLETE:  # else nothing to report
            self._report(exc)
        self.lost() if self.state is not _COMPLETE else self._wake_receiver()
        self.ended = True
        self.app = None

    def _report(self, exc: BaseException | None) -> None:
        request = self.request
        where = f"{request.method} {request.path}"
        if isinstance(exc, _Misuse):
            log.error("ASGI app misuse in %s: %s", where, exc)
        elif isinstance(exc, asyncio.CancelledError) or (self.gone and isinstance(exc, OSError)):
            pass  # stopped by the server, or the client left: nothing the app did wrong
        elif exc is not None:
            log.error("exception in ASGI app for %s", where, exc_info=exc)
        elif exc is None and self.state is _WAITING:
            log.error("ASGI app returned without sending a response for %s", where)
        elif exc is None and self.state is _STARTED and not self.gone:
            log.error("ASGI app returned without completing the response for %s", where)
        if self.state is _STARTED:
            self.error = "the ASGI app ended before completing its response"
            self._wake_consumer()

    def _pending_done(self, _: object) -> None:
        # What the app awaits is done: the stepping task goes on.
        self._wake_stepper()


async def _awaiting(awaitable: Any) -> None:
    """A coroutine for an app that returned another kind of awaitable."""
    await awaitable


def _started(cycle: _Cycle) -> bool:
    return cycle.state is not _WAITING


def _never(cycle: _Cycle) -> bool:
    return False


@types.coroutine
def _step(cycle: _Cycle, until: Callable[[_Cycle], bool]) -> Generator[Any, None, None]:
    """Run the app in the awaiting task until ``until(cycle)`` holds, or the app ends.

    Every step of one app runs in this one task, as if the app were awaited here: libraries
    that tie state to the current task need that (anyio's cancel scopes, which Starlette
    uses). While the app waits, a message sent by another of its tasks (Starlette streams
    from a task of its own) also ends the wait, so that the response goes out as it is sent.
    A cancellation of this task reaches the app as a task's would: what it awaits is
    cancelled.
    """
    app = cycle.app
    if app is None:
        return
    pending = cycle.pending
    while True:
        thrown: BaseException | None = None
        if pending is None or (until is _never and pending is not _FRESH):
            # What the app waits on goes to the task as is (None: a bare yield, as
            # asyncio.sleep(0) makes): nothing else can end the wait.
            try:
                yield pending
            except BaseException as exc:  # noqa: BLE001 - the app's to handle, as in a task
                thrown = exc
        elif pending is not _FRESH:
            if getattr(pending, "_asyncio_future_blocking", None) is None:
                # Not an asyncio future: what a task would refuse, said to the app the same way.
                pending, thrown = None, RuntimeError(f"Task got bad yield: {pending!r}")
            elif not pending.done():
                waiter = cycle.waiter = pending.get_loop().create_future()
                pending.add_done_callback(cycle._pending_done)
                try:
                    yield from waiter
                except BaseException as exc:  # noqa: BLE001 - the app's to handle, as in a task
                    thrown = exc
                finally:
                    cycle.waiter = None
                    pending.remove_done_callback(cycle._pending_done)
                if not pending.done():
                    if thrown is None:
                        if until(cycle):  # another task of the app sent what was waited for
                            cycle.pending = pending
                            return
                        continue
                    if isinstance(thrown, asyncio.CancelledError) and pending.cancel():
                        thrown = None  # the app sees its await cancelled, as in a task
            if pending is not None:
                pending._asyncio_future_blocking = False
        try:
            pending = app.send(None) if thrown is None else app.throw(thrown)
        except StopIteration:
            cycle.finished(None)
            return
        except BaseException as exc:  # noqa: BLE001 - reported on the cycle, the server carries on
            cycle.finished(exc)
            if not isinstance(exc, Exception):
                raise
            return
        if until(cycle):
            cycle.pending = pending
            return


class ASGIHandler:
    """Serve an ASGI 3 application with this package's server.

    Args:
        app: ``async (scope, receive, send) -> None``.
        root_path: the path the app is mounted at behind a proxy (``scope["root_path"]``).
        lifespan: ``"auto"`` runs the lifespan protocol when the app supports it, ``"on"``
            requires it, ``"off"`` never sends it.
        server_cert: the PEM certificate the server presents, for the TLS extension.
        shutdown_timeout: how long shutdown waits for apps still running after their
            responses (background work) before the lifespan shutdown.

    Example::

        from starlette.applications import Starlette
        serve(ASGIHandler(Starlette(...)), port=8443)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        root_path: str = "",
        lifespan: Literal["auto", "on", "off"] = "auto",
        server_cert: str | None = None,
        shutdown_timeout: float = limits.GRACEFUL_SHUTDOWN_TIMEOUT,
    ) -> None:
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValueError(f"root_path must start with '/' and not end with one: {root_path!r}")
        self.app = app
        self.root_path = root_path
        self.server_cert = server_cert
        self.lifespan = Lifespan(app, lifespan)
        self.shutdown_timeout = shutdown_timeout
        # Tasks whose app goes on after its response began (streaming, background work).
        self._running: set[asyncio.Task[Any]] = set()

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state; each request's scope gets a shallow copy."""
        return self.lifespan.state

    async def startup(self) -> None:
        """Run the app's lifespan startup.

        Raises:
            FrameworkError: the app reported that its startup failed (its message, one line).
        """
        await self.lifespan.startup()

    async def shutdown(self) -> None:
        """Wait (bounded) for apps still running after their responses, then run the lifespan
        shutdown."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=self.shutdown_timeout)
            for task in pending:
                log.warning("cancelling an ASGI app still running at shutdown")
                task.cancel()
        await self.lifespan.shutdown()

    async def __call__(self, request: Request) -> Response:
        """Run the app for ``request`` and answer with what it sends."""
        if request.upgrade is not None and is_websocket_request(request):
            why = refusal(request)
            if why is not None:  # not a handshake the app could accept
                return Response(f"{why}\n", status=400)
            scope = websocket_scope(request, self.root_path, self.lifespan.state, self.server_cert)
            return await serve_websocket(self.app, request, scope)
        cycle = _Cycle(request)
        scope = http_scope(request, self.root_path, self.lifespan.state, self.server_cert)
        try:
            app = self.app(scope, cycle.receive, cycle.send)
        except Exception as exc:  # noqa: BLE001 - an app that fails before its first step
            cycle.finished(exc)
            return cycle.response()
        if type(app) is not types.CoroutineType and not isinstance(app, Coroutine):
            app = _awaiting(app)
        cycle.app = app
        # The app runs in this task, up to its response: most apps answer in full without
        # waiting, with no task and no turn of the loop of their own.
        await _step(cycle, _started)
        response = cycle.response()
        if not cycle.ended:
            # It goes on (streaming its body, or working after it): in this task, where it
            # began, while the server sends the response from another.
            response.on_end = functools.partial(self._finish, cycle)
            source = cycle.source
            if isinstance(source, BodyQueue):
                source.on_lost(cycle.lost)  # a response never sent still releases the app
        return response

    async def _finish(self, cycle: _Cycle) -> None:
        """Run the app's steps after its response began, to its end, in this task.

        The server's task sends the response meanwhile; a client that leaves is told by
        ``receive``, and what the app sends then is ignored. A cancelled task closes the app.
        """
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await _step(cycle, _never)
        except asyncio.CancelledError:
            app, cycle.app = cycle.app, None
            if app is not None:
                app.close()
            raise
        finally:
            if task is not None:
                self._running.discard(task)

    def __repr__(self) -> str:
        return f"<ASGIHandler {self.app!r}>"
