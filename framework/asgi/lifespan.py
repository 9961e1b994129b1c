"""The ASGI lifespan protocol, from the server's side: startup before serving, shutdown after.

``auto`` (uvicorn's default) treats an app that raises before asking for the startup event,
or returns without answering it, as one without lifespan support, and serves it anyway; an
app that says ``lifespan.startup.failed``, or raises once it has the startup event, stops the
start with its message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from ..errors import FrameworkError
from .scope import ASGIApp, Message

__all__ = ["Lifespan"]

log = logging.getLogger("framework.asgi")

_SCOPE_ASGI = {"version": "3.0", "spec_version": "2.0"}


def _one_line(message: str) -> str:
    # Starlette sends the whole traceback as the message; its last line says what failed.
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Lifespan:
    """One app's lifespan: ``startup()`` and ``shutdown()`` around the server's life.

    Attributes:
        state: the lifespan scope's ``state``; the app fills it at startup and each request
            sees a shallow copy.
    """

    def __init__(self, app: ASGIApp, mode: Literal["auto", "on", "off"] = "auto") -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] | None = None
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._asked = False  # the app called receive()
        self._running = False
        self._start_failed = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the app's answer.

        Raises:
            FrameworkError: the app's startup failed (its message, one line).
        """
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = loop.create_task(self._main())
        await self._started
        self._running = not self._task.done()

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app's answer (failures are logged)."""
        if not self._running or self._inbox is None or self._stopped is None:
            return
        self._running = False
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        await self._stopped
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": _SCOPE_ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            self._failed(exc)
        finally:
            # An app that returns without answering has nothing to say about its lifespan.
            if self._started is not None and not self._started.done():
                if self.mode == "on":
                    self._fail_start("the app returned without answering lifespan.startup")
                else:
                    self._started.set_result(None)
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)

    def _failed(self, exc: Exception) -> None:
        assert self._started is not None
        assert self._stopped is not None
        if self._start_failed:
            log.debug("ASGI lifespan startup raised", exc_info=exc)  # already reported
        elif not self._started.done():
            if not self._asked and self.mode == "auto":
                log.info("the ASGI app does not support the lifespan protocol (%r)", exc)
                self._started.set_result(None)
            else:
                log.debug("ASGI lifespan startup raised", exc_info=exc)
                self._fail_start(f"{type(exc).__name__}: {exc}")
        elif not self._stopped.done():
            log.error("ASGI lifespan shutdown failed: %s: %s", type(exc).__name__, exc)
        else:
            log.error("ASGI lifespan task failed", exc_info=exc)

    def _fail_start(self, why: str) -> None:
        assert self._started is not None
        self._start_failed = True
        self._started.set_exception(FrameworkError(f"ASGI lifespan startup failed: {why}"))

    async def _receive(self) -> Message:
        assert self._inbox is not None
        self._asked = True
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        assert self._started is not None
        assert self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            if not self._started.done():
                self._started.set_result(None)
        elif kind == "lifespan.startup.failed":
            if not self._started.done():
                self._fail_start(_one_line(message.get("message", "")) or "(no message)")
        elif kind == "lifespan.shutdown.complete":
            if not self._stopped.done():
                self._stopped.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            log.error("ASGI lifespan shutdown failed: %s", _one_line(message.get("message", "")))
            if not self._stopped.done():
                self._stopped.set_result(None)
        else:
            raise RuntimeError(f"unknown ASGI message type {kind!r} for a lifespan scope")
