"""The shortcut methods (``get``, ``post``, ...) shared by ``Client`` and ``SyncClient``.

This module owns the names and types of the per-request options, so that the shortcuts,
``Client.request`` and ``SyncClient.request`` accept the same ones, and the shortcuts
themselves, each a call of ``request(METHOD, url, **options)``.
"""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar, Unpack

from ..messages import HeadersLike
from .auth import AuthLike
from .multipart import DataLike, FilesLike
from .request import Content, QueryLike, Timeout

__all__ = ["BodyOptions", "RequestOptions", "Shortcuts"]

R = TypeVar("R")


class RequestOptions(TypedDict, total=False):
    """What every request may set (see ``Client.request``)."""

    headers: HeadersLike | None
    params: QueryLike | None
    cookies: dict[str, str] | None
    auth: AuthLike | None
    timeout: Timeout | float | None
    follow_redirects: bool | None


class BodyOptions(RequestOptions, total=False):
    """What a request with a body may set besides (see ``Client.request``)."""

    content: Content | None
    data: DataLike | None
    files: FilesLike | None
    json: Any


class Shortcuts(Generic[R]):
    """``get``, ``head``, ``options``, ``delete``, ``post``, ``put``, ``patch``: each is
    ``request(METHOD, url, **options)``, and returns what ``request`` returns (``R``)."""

    def request(self, method: str, url: str, **options: Unpack[BodyOptions]) -> R:
        raise NotImplementedError

    def get(self, url: str, **options: Unpack[RequestOptions]) -> R:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **options)

    def head(self, url: str, **options: Unpack[RequestOptions]) -> R:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **options)

    def options(self, url: str, **options: Unpack[RequestOptions]) -> R:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **options)

    def delete(self, url: str, **options: Unpack[RequestOptions]) -> R:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **options)

    def post(self, url: str, **options: Unpack[BodyOptions]) -> R:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **options)

    def put(self, url: str, **options: Unpack[BodyOptions]) -> R:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **options)

    def patch(self, url: str, **options: Unpack[BodyOptions]) -> R:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **options)
