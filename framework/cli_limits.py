"""The ``serve`` flags for every server limit, and the README's table of limits.

One table, ``FLAGS``, ties each constant of ``limits.py`` that a server applies to its
``ServerConfig`` field and its ``serve`` flag; the parser, the config built from the command
line and ``python -m framework limits`` all read it, so none can drift from another.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable
from typing import Any

from .errors import FrameworkError

__all__ = ["FLAGS", "add_limit_flags", "config_from_args", "limits_table"]

_SIZE = re.compile(r"^\s*(\d+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_UNLIMITED = ("unlimited", "none")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds, e.g. 30 or 0.5, not {value!r}"
        ) from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {value!r}")
    return seconds


def _seconds_or_none(value: str) -> float | None:
    return None if value.strip().lower() in _UNLIMITED else _seconds(value)


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {value!r}") from None
    if count <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {value!r}")
    return count


def _count_or_none(value: str) -> int | None:
    return None if value.strip().lower() in _UNLIMITED else _count(value)


def _size(value: str) -> int:
    found = _SIZE.match(value)
    if found is None or int(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive size in bytes, e.g. 1048576, 512KiB or 10MiB, not {value!r}"
        )
    return int(found.group(1)) * _UNITS[found.group(2)[:1].lower()]


def _size_or_none(value: str) -> int | None:
    return None if value.strip().lower() in _UNLIMITED else _size(value)


#: constant of limits.py -> (ServerConfig field, serve flag, parser of the flag's value).
FLAGS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "MAX_HEADER_BYTES": ("max_header_bytes", "--max-header-bytes", _size),
    "MAX_REQUEST_LINE_BYTES": ("max_request_line_bytes", "--max-request-line-bytes", _size),
    "MAX_HEADER_COUNT": ("max_header_count", "--max-header-count", _count),
    "MAX_BODY_BYTES": ("max_body_bytes", "--max-body-size", _size),
    "MAX_STREAM_BODY_BYTES": ("max_stream_body_bytes", "--max-stream-body-size", _size_or_none),
    "KEEP_ALIVE_TIMEOUT": ("keep_alive_timeout", "--keep-alive-timeout", _seconds),
    "TLS_HANDSHAKE_TIMEOUT": ("tls_handshake_timeout", "--tls-handshake-timeout", _seconds),
    "REQUEST_HEAD_TIMEOUT": ("head_timeout", "--head-timeout", _seconds),
    "BODY_TIMEOUT": ("body_timeout", "--body-timeout", _seconds),
    "REQUEST_TIMEOUT": ("request_timeout", "--request-timeout", _seconds_or_none),
    "WRITE_TIMEOUT": ("write_timeout", "--write-timeout", _seconds),
    "MAX_CONNECTIONS": ("max_connections", "--max-connections", _count),
    "MAX_IN_FLIGHT": ("max_in_flight", "--max-in-flight", _count_or_none),
    "RETRY_AFTER": ("retry_after", "--retry-after", _count),
    "MAX_REQUESTS_PER_CONNECTION": (
        "max_requests_per_connection",
        "--max-requests-per-connection",
        _count_or_none,
    ),
    "BACKLOG": ("backlog", "--backlog", _count),
    "WS_MAX_MESSAGE_BYTES": ("ws_max_message_bytes", "--ws-max-size", _size),
    "WS_QUEUE_MESSAGES": ("ws_queue_messages", "--ws-max-queue", _count),
    "WS_PING_INTERVAL": ("ws_ping_interval", "--ws-ping-interval", _seconds_or_none),
    "WS_PING_TIMEOUT": ("ws_ping_timeout", "--ws-ping-timeout", _seconds),
    "WS_CLOSE_TIMEOUT": ("ws_close_timeout", "--ws-close-timeout", _seconds),
}


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per server limit to the ``serve`` parser (default: ``limits.py``'s)."""
    from . import limits

    group = parser.add_argument_group("limits and timeouts (see `framework limits`)")
    for constant, (field, flag, parse) in FLAGS.items():
        default = getattr(limits, constant)
        optional = parse in (_size_or_none, _count_or_none, _seconds_or_none)
        shown = "unlimited" if default is None else f"{default:,}"
        hint = " ('unlimited' for none)" if optional else ""
        group.add_argument(
            flag, dest=field, type=parse, default=argparse.SUPPRESS, help=f"default {shown}{hint}"
        )


def config_from_args(args: argparse.Namespace, **fields: Any) -> Any:
    """The ``ServerConfig`` of the flags given (and ``fields``).

    Raises:
        FrameworkError: one line, when the values do not fit together.
    """
    from .server import ServerConfig

    for field, _, _ in FLAGS.values():
        if hasattr(args, field):
            fields[field] = getattr(args, field)
    try:
        return ServerConfig(**fields)
    except ValueError as exc:
        raise FrameworkError(str(exc)) from None


def limits_table() -> str:
    """The Markdown table of every limit and default, made from ``framework/limits.py``.

    Each row is a constant with its value, the ``ServerConfig`` field and ``serve`` flag that
    set it (for the server's), and the ``#:`` comment above it (what it is, and its
    precedent), so the README's table cannot drift from the code.
    """
    import inspect

    from . import limits

    source = inspect.getsource(limits)
    lines = source.splitlines()
    rows = [
        "| name | value | `ServerConfig` field / `serve` flag | what, and its precedent |",
        "|---|---|---|---|",
    ]
    for node in ast.parse(source).body:
        if not (
            isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(_target(node), ast.Name)
        ):
            continue
        name = _target(node).id  # type: ignore[attr-defined]
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].startswith("#:"):
            comment.insert(0, lines[index][2:].strip())
            index -= 1
        value = getattr(limits, name)
        if value is None:
            shown = "none"
        elif isinstance(value, int | float) and not isinstance(value, bool):
            shown = f"{value:,}"
        else:
            shown = repr(value)
        if isinstance(value, str) and len(value) > 40:
            shown = value.replace(":", " ")
        setting = ""
        if name in FLAGS:
            field, flag, _ = FLAGS[name]
            setting = f"`{field}` / `{flag}`"
        rows.append(f"| `{name}` | {shown} | {setting} | {' '.join(comment)} |")
    return "\n".join(rows)


def _target(node: ast.Assign | ast.AnnAssign) -> ast.expr:
    return node.targets[0] if isinstance(node, ast.Assign) else node.target
