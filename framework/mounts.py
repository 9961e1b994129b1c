"""Mounting: another ``App``, any ``Handler``, or an ASGI app answering under a path prefix.

The mounted handler sees the path below the prefix (``/admin/users`` mounted at ``/admin``
is ``/users``), as Starlette's ``Mount`` gives it; the prefix is in
``request.state.root_path``. An ASGI app gets it as ``scope["root_path"]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .messages import Handler, Request, Response

__all__ = ["Mount", "check_prefix"]

_PREFIX = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$")


def check_prefix(prefix: str, *, empty_ok: bool) -> str:
    """``prefix`` when it is a literal path to mount or include at.

    Raises:
        ValueError: it does not start with ``/``, ends with one, or has a ``{parameter}``.
    """
    if (prefix == "" and empty_ok) or _PREFIX.match(prefix):
        return prefix
    raise ValueError(
        f"a prefix must be a literal path starting with '/' and not ending with one, as "
        f"'/api', not {prefix!r}"
    )


@dataclass
class Mount:
    """``handler`` answering every path under ``prefix``.

    Attributes:
        prefix: the literal path, ``/admin``.
        handler: what answers: an ``App``, a ``Handler``, or an ``ASGIHandler``.
        name: the name ``url_for("name:route")`` reaches the mounted app's routes by.
    """

    prefix: str
    handler: Handler
    name: str | None = None

    def __post_init__(self) -> None:
        check_prefix(self.prefix, empty_ok=False)

    def rest_of(self, path: str) -> str | None:
        """The path below the prefix (``/`` for the prefix itself), or ``None`` if not under it."""
        if path == self.prefix:
            return "/"
        if path.startswith(self.prefix + "/"):
            return path[len(self.prefix) :]
        return None

    async def answer(self, request: Request, rest: str) -> Response:
        """Call the handler with the request's path below the prefix, then put it back."""
        path, raw_path = request.path, request.raw_path
        root = request.state.get("root_path", "")
        prefix = self.prefix.encode("latin-1")
        if raw_path == prefix:
            raw_rest = b"/"
        elif raw_path.startswith(prefix + b"/"):
            raw_rest = raw_path[len(prefix) :]
        else:  # the client percent-encoded part of the prefix
            raw_rest = quote(rest, safe="/:@!$&'()*+,;=").encode("latin-1")
        request.path, request.raw_path = rest, raw_rest
        request.state["root_path"] = root + self.prefix
        try:
            return await self.handler(request)
        finally:
            request.path, request.raw_path = path, raw_path
            request.state["root_path"] = root

    def url_path_for(self, name: str, /, **params: Any) -> str:
        """The path of the mounted app's route ``name`` (below this mount), with the prefix.

        Raises:
            LookupError: the mounted handler has no routes by that name.
        """
        find = getattr(self.handler, "url_for", None)
        if find is None:
            raise LookupError(f"the app mounted at {self.prefix} has no named routes")
        path: str = find(name, **params)
        return self.prefix + path
