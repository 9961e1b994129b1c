"""Route decorators for anything that can ``add_route``: ``@router.get("/path")`` and kin.

Shared by ``Router`` (a group of routes to include into an app) so its decorators read as
``App``'s do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["RouteDecorators"]

F = TypeVar("F", bound=Callable[..., Any])


class RouteDecorators:
    """``route``, ``get``, ``post``, ``put``, ``patch``, ``delete``, ``head``, ``options``."""

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        *,
        max_body_size: int | None = None,
    ) -> Any:
        """Add a route (the decorators call this)."""
        raise NotImplementedError

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        name: str | None = None,
        *,
        max_body_size: int | None = None,
    ) -> Callable[[F], F]:
        """Decorate a handler for ``path`` and ``methods``; the handler is returned unchanged."""

        def decorate(endpoint: F) -> F:
            self.add_route(path, endpoint, methods, name, max_body_size=max_body_size)
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
