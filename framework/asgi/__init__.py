"""ASGI 3 both ways: ASGI apps served by this package's server, ``App`` under ASGI servers.

``ASGIHandler(app)`` makes an ASGI application (Starlette, FastAPI, Django's ASGI handler, a
raw ``async (scope, receive, send)``) a ``Handler`` for ``Server``: ``http`` and ``lifespan``
scopes, the TLS extension, ``root_path`` and lifespan ``state``. ``run_asgi`` is the other
direction, used by ``App.__call__(scope, receive, send)``. ``interface_of`` tells the two
kinds of callable apart for ``framework serve``.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from ..errors import FrameworkError
from ..messages import Handler
from .handler import ASGIHandler
from .lifespan import Lifespan
from .native import run_asgi
from .scope import ASGI_VERSION, ASGIApp, Message, Receive, Scope, Send, http_scope, tls_extension

__all__ = [
    "ASGIApp",
    "ASGIHandler",
    "ASGI_VERSION",
    "Lifespan",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "as_handler",
    "http_scope",
    "interface_of",
    "run_asgi",
    "tls_extension",
]


def interface_of(obj: Any) -> Literal["asgi", "native"] | None:
    """``"native"`` for ``async (request)``, ``"asgi"`` for ``async (scope, receive, send)``.

    ``None`` when it cannot be told from the signature (``*args``, a sync callable, a class):
    the caller then asks for ``--interface``. An ``App`` takes both and is native: its
    ``receive`` and ``send`` are optional.
    """
    func = obj
    if not (inspect.isfunction(obj) or inspect.ismethod(obj)):
        func = getattr(obj, "__call__", None)  # noqa: B004 - instances: their __call__
        if func is None or inspect.isclass(obj):
            return None
    if not inspect.iscoroutinefunction(func):
        return None
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    required = [p for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]
    if len(required) == 1:
        return "native"
    if len(required) == 3:
        return "asgi"
    return None


def as_handler(
    obj: Any,
    interface: Literal["auto", "asgi", "native"] = "auto",
    *,
    root_path: str = "",
    lifespan: Literal["auto", "on", "off"] = "auto",
) -> Handler:
    """What the server serves for ``obj``: itself when native, an ``ASGIHandler`` for ASGI.

    ``interface="auto"`` tells them apart by signature (``interface_of``); an ``App`` is
    native (it is ASGI too, but served directly it skips the translation).

    Raises:
        FrameworkError: ``auto`` could not tell, with how to say it.
    """
    if interface == "auto":
        found = interface_of(obj)
        if found is None:
            raise FrameworkError(
                f"cannot tell whether {obj!r} is an ASGI app (async (scope, receive, send)) or "
                "a native handler (async (request)); pass --interface asgi or --interface native"
            )
        interface = found
    if interface == "native":
        if root_path:
            raise FrameworkError("--root-path applies to ASGI apps; a native App has no use of it")
        return obj  # type: ignore[no-any-return]
    return ASGIHandler(obj, root_path=root_path, lifespan=lifespan)
