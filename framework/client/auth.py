"""What ``auth=`` accepts and how it becomes the request's ``Authorization`` header.

This module owns the forms of credentials a request may carry: a ``(user, password)`` tuple
or ``BasicAuth`` (RFC 7617), ``BearerAuth`` (RFC 6750), or any callable given the request
about to be sent, which may change its headers (and may be a coroutine, to fetch a token).
It knows nothing of connections or redirects: the client drops credentials on a redirect to
another origin (``client.py``).
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import Callable
from typing import TypeAlias

from ..messages import Headers

__all__ = ["AuthLike", "BasicAuth", "BearerAuth", "PendingRequest", "authorize", "to_auth"]


class PendingRequest:
    """The request an ``auth=`` callable is given before it is sent.

    Attributes:
        method: ``"GET"``, ``"POST"``, ...
        url: the absolute URL.
        headers: the request's own headers; set ``headers["authorization"]`` (or any other).
    """

    __slots__ = ("method", "url", "headers")

    def __init__(self, method: str, url: str, headers: Headers) -> None:
        self.method = method
        self.url = url
        self.headers = headers

    def __repr__(self) -> str:
        return f"<PendingRequest [{self.method} {self.url}]>"


class BasicAuth:
    """HTTP Basic credentials (RFC 7617), sent UTF-8 encoded.

    Args:
        username: the user name (no ``:``).
        password: the password.
    """

    __slots__ = ("header",)

    def __init__(self, username: str, password: str) -> None:
        if ":" in username:
            raise ValueError("a Basic auth user name cannot contain ':' (RFC 7617)")
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self.header = f"Basic {token}"

    def __call__(self, request: PendingRequest) -> None:
        request.headers.setdefault("authorization", self.header)

    def __repr__(self) -> str:
        return "BasicAuth(***)"


class BearerAuth:
    """A bearer token (RFC 6750): ``Authorization: Bearer <token>``."""

    __slots__ = ("header",)

    def __init__(self, token: str) -> None:
        if not token or any(c in token for c in "\r\n "):
            raise ValueError("a bearer token must be non-empty, without spaces or line breaks")
        self.header = f"Bearer {token}"

    def __call__(self, request: PendingRequest) -> None:
        request.headers.setdefault("authorization", self.header)

    def __repr__(self) -> str:
        return "BearerAuth(***)"


AuthLike: TypeAlias = (
    "tuple[str, str] | BasicAuth | BearerAuth | Callable[[PendingRequest], object]"
)


def to_auth(auth: AuthLike | None) -> Callable[[PendingRequest], object] | None:
    """``auth`` as a callable, checked once.

    Raises:
        TypeError: ``auth`` is none of the accepted forms.
    """
    if auth is None or callable(auth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(x, str) for x in auth):
        return BasicAuth(auth[0], auth[1])
    raise TypeError(
        "auth must be a (user, password) tuple, BasicAuth, BearerAuth or a callable taking "
        f"the request, not {type(auth).__name__}"
    )


async def authorize(
    auth: Callable[[PendingRequest], object],
    method: str,
    url: str,
    own: list[tuple[bytes, bytes]] | None,
) -> list[tuple[bytes, bytes]]:
    """A request's own headers once ``auth`` set them (awaited when it is async); an
    ``Authorization`` the request already has is kept by ``BasicAuth`` and ``BearerAuth``."""
    headers = Headers.from_raw(list(own or ()))
    result = auth(PendingRequest(method, url, headers))
    if inspect.isawaitable(result):
        await result
    return headers.raw
