"""Handler arguments from the signature: typed query parameters and a JSON body.

``async def users(request, limit: int = 10, tag: list[str] | None = None)`` gets ``limit``
and ``tag`` from the query string, converted by their annotations; a parameter annotated with
a dataclass or a ``TypedDict`` gets the request's JSON body, checked field by field. What does
not convert is collected and answered ``422`` with every problem, never a 500. The signature
is read once per route; a handler that takes only the request and its path parameters costs
nothing per request.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin, is_typeddict

from .errors import ValidationError
from .messages import Request

__all__ = ["Binder", "convert_json", "convert_text", "make_binder"]

_MISSING = inspect.Parameter.empty
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _optional_inner(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(tp, False)``."""
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) != len(get_args(tp)):
            return args[0], True
    return tp, False


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        return {
            int: "an integer",
            float: "a number",
            bool: "a boolean (true/false)",
            str: "a string",
            uuid.UUID: "a UUID",
        }.get(tp, tp.__name__)
    return str(tp)


def convert_text(text: str, tp: Any) -> Any:
    """``text`` (from a query string or path) as a value of ``tp``.

    Supports ``str``, ``int``, ``float``, ``bool``, ``uuid.UUID`` and ``Enum`` subclasses.

    Raises:
        ValueError: ``text`` is not a valid ``tp``; the message says what was expected.
    """
    tp, _ = _optional_inner(tp)
    try:
        if tp is str or tp is Any:
            return text
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if tp is int:
            return int(text)
        if tp is float:
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(text)
            return value
        if tp is uuid.UUID:
            return uuid.UUID(text)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            for member in tp:
                if str(member.value) == text:
                    return member
            raise ValueError(text)
    except ValueError:
        raise ValueError(f"expected {_describe(tp)}") from None
    raise TypeError(f"cannot convert text to {tp!r}")


def _check_text_type(tp: Any, where: str) -> None:
    tp, _ = _optional_inner(tp)
    origin = get_origin(tp)
    if origin in (list, tuple, set, frozenset):
        args = get_args(tp)
        tp = args[0] if args else str
    ok = tp in (str, int, float, bool, uuid.UUID, Any) or (
        isinstance(tp, type) and issubclass(tp, enum.Enum)
    )
    if not ok:
        raise TypeError(
            f"{where}: cannot take {tp!r} from the query string; use str, int, float, bool, "
            "uuid.UUID, an Enum, list[...] of those or Optional[...] (a dataclass or "
            "TypedDict annotation takes the JSON body)"
        )


def _is_body_type(tp: Any) -> bool:
    # A dataclass, a TypedDict or a dict (any JSON object) comes from the body; FastAPI
    # reads a dict-annotated parameter from the body too.
    tp, _ = _optional_inner(tp)
    if tp is dict or get_origin(tp) is dict:
        return True
    return (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or is_typeddict(tp)


def convert_json(value: Any, tp: Any, loc: list[str | int], errors: list[dict[str, Any]]) -> Any:
    """``value`` (decoded JSON) checked and converted to ``tp``; problems go to ``errors``.

    Dataclasses and ``TypedDict`` s are built from objects (unknown keys are ignored, as
    Pydantic does by default), ``list[...]``/``dict[str, ...]`` element by element, ``UUID``
    and ``Enum`` from their values. Nothing is coerced across kinds: ``"1"`` is not an int.
    """

    def fail(msg: str) -> None:
        errors.append({"loc": list(loc), "msg": msg, "type": "type_error"})

    inner, optional = _optional_inner(tp)
    if value is None:
        if optional or tp is Any or tp is type(None):
            return None
        fail(f"expected {_describe(inner)}, got null")
        return None
    tp = inner
    origin = get_origin(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_object(value, tp, loc, errors, dataclass=True)
    if is_typeddict(tp):
        return _build_object(value, tp, loc, errors, dataclass=False)
    if origin is list or tp is list:
        if not isinstance(value, list):
            fail("expected a list")
            return None
        (item,) = get_args(tp) or (Any,)
        return [convert_json(v, item, [*loc, i], errors) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            fail("expected an object")
            return None
        _, item = get_args(tp) or (str, Any)
        return {k: convert_json(v, item, [*loc, k], errors) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            fail("expected a boolean")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            fail("expected an integer")
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            fail("expected a number")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("expected a string")
        return value
    if tp is uuid.UUID or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            fail(f"expected {_describe(tp)}")
            return None
        if tp is not uuid.UUID:
            members: list[enum.Enum] = list(typing.cast(type[enum.Enum], tp))
            for member in members:
                if member.value == value:
                    return member
            fail(f"expected {_describe(tp)}")
            return None
        try:
            return uuid.UUID(str(value))
        except ValueError:
            fail("expected a UUID")
            return None
    raise TypeError(f"cannot take {tp!r} from JSON")


def _build_object(
    value: Any, tp: Any, loc: list[str | int], errors: list[dict[str, Any]], *, dataclass: bool
) -> Any:
    if not isinstance(value, dict):
        errors.append({"loc": list(loc), "msg": "expected an object", "type": "type_error"})
        return None
    hints = typing.get_type_hints(tp)
    if dataclass:
        init = [f for f in dataclasses.fields(tp) if f.init]
        fields = [f.name for f in init]
        required = {
            f.name
            for f in init
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
    else:
        fields = list(hints)
        required = set(tp.__required_keys__)
    before = len(errors)
    out: dict[str, Any] = {}
    for name in fields:
        if name in value:
            out[name] = convert_json(value[name], hints.get(name, Any), [*loc, name], errors)
        elif name in required:
            errors.append({"loc": [*loc, name], "msg": "field required", "type": "missing"})
    if len(errors) > before:
        return None
    return tp(**out)


Binder = Callable[[Request, dict[str, Any]], typing.Awaitable[dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class _Query:
    name: str
    tp: Any
    many: bool
    default: Any


def make_binder(endpoint: Callable[..., Any], path_params: dict[str, Any]) -> Binder | None:
    """What the app calls to get ``endpoint``'s arguments, or ``None`` when path params do.

    ``path_params`` maps each path parameter to the type its template already converts to.

    Raises:
        TypeError: a parameter's annotation cannot be taken from a request.
    """
    signature = inspect.signature(endpoint)
    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # an annotation that does not resolve: fall back to the raw ones
        hints = {}
    where = getattr(endpoint, "__qualname__", repr(endpoint))
    params = list(signature.parameters.values())[1:]  # the first is the request
    queries: list[_Query] = []
    typed_path: dict[str, Any] = {}
    body: tuple[str, Any, Any] | None = None
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        tp = hints.get(p.name, p.annotation)
        if tp is _MISSING:
            tp = Any
        if p.name in path_params:
            if tp not in (Any, path_params[p.name]) and not isinstance(tp, str):
                _check_text_type(tp, f"{where}({p.name})")
                typed_path[p.name] = tp
            continue
        if _is_body_type(tp):
            if body is not None:
                raise TypeError(f"{where}: only one parameter can take the JSON body")
            body = (p.name, tp, p.default)
            continue
        _check_text_type(tp, f"{where}({p.name})")
        inner, _ = _optional_inner(tp)
        many = get_origin(inner) in (list, tuple, set, frozenset)
        queries.append(_Query(p.name, tp, many, p.default))
    if not queries and not typed_path and body is None:
        return None
    return _binder(tuple(queries), typed_path, body)


def _binder(
    queries: tuple[_Query, ...], typed_path: dict[str, Any], body: tuple[str, Any, Any] | None
) -> Binder:
    async def bind(request: Request, path: dict[str, Any]) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        kwargs = dict(path)
        for name, tp in typed_path.items():
            raw = path[name]
            if isinstance(raw, str):
                try:
                    kwargs[name] = convert_text(raw, tp)
                except ValueError as exc:
                    errors.append({"loc": ["path", name], "msg": str(exc), "type": "value_error"})
        query = request.query
        for q in queries:
            values = query.get_all(q.name)
            if not values:
                if q.default is _MISSING:
                    errors.append(
                        {"loc": ["query", q.name], "msg": "field required", "type": "missing"}
                    )
                else:
                    kwargs[q.name] = q.default
                continue
            inner, _ = _optional_inner(q.tp)
            if q.many:
                args = get_args(inner)
                item = args[0] if args else str
                converted = []
                for i, text in enumerate(values):
                    try:
                        converted.append(convert_text(text, item))
                    except ValueError as exc:
                        errors.append(
                            {"loc": ["query", q.name, i], "msg": str(exc), "type": "value_error"}
                        )
                origin = get_origin(inner) or list
                kwargs[q.name] = origin(converted)
            else:
                try:
                    kwargs[q.name] = convert_text(values[0], q.tp)
                except ValueError as exc:
                    errors.append(
                        {"loc": ["query", q.name], "msg": str(exc), "type": "value_error"}
                    )
        if body is not None:
            name, tp, default = body
            if not (await request.body()) and default is not _MISSING:
                kwargs[name] = default
            else:
                kwargs[name] = convert_json(await request.json(), tp, ["body"], errors)
        if errors:
            raise ValidationError(errors)
        return kwargs

    return bind
