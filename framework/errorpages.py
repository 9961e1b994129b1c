"""Error bodies as the client expects them: JSON ``{"detail": ...}`` or plain text.

A client that asks for JSON (``Accept: application/json`` or a ``+json`` type), or a route whose
handler returns JSON (annotated ``-> dict``, ``-> list``, a dataclass or a ``JSONResponse``),
gets ``{"detail": ...}`` as FastAPI sends it; everyone else gets the text.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin, is_typeddict

from .errors import HTTPError, ValidationError
from .messages import JSONResponse, Request, Response

__all__ = ["error_response", "returns_json", "wants_json"]


def wants_json(request: Request) -> bool:
    """True when the request's ``Accept`` prefers JSON to text and HTML."""
    accept = request.headers.get("accept")
    if not accept:
        return False
    best_json = best_other = 0.0
    for item in accept.split(",")[:32]:  # a hostile Accept costs a bounded amount
        kind, *params = item.strip().lower().split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        kind = kind.strip()
        if kind == "application/json" or kind.endswith("+json"):
            best_json = max(best_json, quality)
        elif kind.startswith("text/") or kind in ("*/*", "application/xhtml+xml"):
            best_other = max(best_other, quality if kind != "*/*" else quality * 0.5)
    return best_json > 0 and best_json >= best_other


def returns_json(endpoint: Callable[..., Any]) -> bool:
    """True when ``endpoint``'s return annotation is JSON (dict, list, dataclass, TypedDict)."""
    try:
        hint = typing.get_type_hints(endpoint).get("return", inspect.Parameter.empty)
    except Exception:  # an annotation that does not resolve says nothing about the body
        return False
    return _is_json_type(hint)


def _is_json_type(hint: Any) -> bool:
    tp = get_origin(hint) or hint
    if tp is Union or tp is types.UnionType:  # dict | None: JSON when it is anything
        return any(_is_json_type(arg) for arg in get_args(hint) if arg is not type(None))
    if tp in (dict, list):
        return True
    if isinstance(tp, type):
        return issubclass(tp, JSONResponse) or dataclasses.is_dataclass(tp)
    return is_typeddict(tp)


def error_response(exc: HTTPError, *, as_json: bool) -> Response:
    """The response for ``exc``: its status, headers and detail (JSON or text)."""
    if exc.status in (204, 304) or exc.status < 200:
        return Response(b"", exc.status, exc.headers)
    detail: Any = exc.detail if exc.detail is not None else Response(b"", exc.status).reason
    if as_json:
        if isinstance(exc, ValidationError):
            detail = exc.errors
        return JSONResponse({"detail": detail}, exc.status, exc.headers)
    return Response(detail, exc.status, exc.headers)
