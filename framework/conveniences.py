"""What requests and responses offer handlers beyond HTTP itself: cookies, forms, sessions,
per-request state and background calls.

``Request`` and ``Response`` (in ``messages``) take these methods from the two classes here, so
the core of each stays about HTTP and this part can grow on its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import limits
from .cookies import Cookie, SameSite, parse_cookie_header

if TYPE_CHECKING:
    from .forms import FormData
    from .headers import Headers

__all__ = ["RequestConveniences", "ResponseConveniences", "State"]

log = logging.getLogger("framework.app")


class State(dict[str, Any]):
    """Shared values, by attribute or by key: ``state.db`` is ``state["db"]``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"state has no {name!r}; set it first") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class RequestConveniences:
    """``request.cookies``, ``request.session`` and ``await request.form()``."""

    __slots__ = ()

    if TYPE_CHECKING:
        headers: Headers
        state: State
        max_body_size: int

        def stream(self) -> AsyncIterator[bytes]: ...

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies, parsed from its ``Cookie`` headers (RFC 6265)."""
        values = self.headers.get_all("cookie")
        return parse_cookie_header("; ".join(values)) if values else {}

    @property
    def session(self) -> dict[str, Any]:
        """The signed-cookie session ``SessionMiddleware`` loaded (a dict; changes are saved).

        Raises:
            RuntimeError: no ``SessionMiddleware`` is installed.
        """
        try:
            session: dict[str, Any] = self.state["session"]
        except KeyError:
            raise RuntimeError(
                "request.session needs SessionMiddleware: "
                "app.middleware(SessionMiddleware(secret_key=...))"
            ) from None
        return session

    async def form(
        self,
        *,
        max_fields: int = limits.FORM_MAX_FIELDS,
        max_files: int = limits.FORM_MAX_FILES,
        max_part_size: int = limits.FORM_MAX_PART_BYTES,
        spool_dir: str | None = None,
    ) -> FormData:
        """The body as a form: ``application/x-www-form-urlencoded`` or ``multipart/form-data``.

        ``max_fields``, ``max_files`` and ``max_part_size`` (a text field's bytes) bound the
        form, as Starlette's ``request.form()`` takes them; the whole body is bounded by the
        route's ``max_body_size``. Multipart files are streamed to ``UploadFile`` s that stay
        in memory up to ``limits.FORM_SPOOL_BYTES`` and move to a temporary file (in
        ``spool_dir``) above it.
        The body is read once; later calls return the same ``FormData``, whose files the
        app closes (removing temporary files) once the handler's response is made.

        Raises:
            HTTPError: 415 for another content type; 400 for a malformed body; 413 past a
                limit of ``limits.py`` (fields, files, part size, total size).
        """
        form: FormData | None = self.state.get("_form")
        if form is None:
            from .errors import HTTPError
            from .forms import parse_form

            declared = self.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
                # Refused before a byte is read (and before 100 Continue), as body() does.
                raise HTTPError(413, f"form larger than {self.max_body_size} bytes")

            form = await parse_form(
                self.headers.get("content-type") or "",
                self.stream(),
                max_size=self.max_body_size,
                max_fields=max_fields,
                max_files=max_files,
                max_part_size=max_part_size,
                spool_dir=spool_dir,
            )
            self.state["_form"] = form
        return form


class ResponseConveniences:
    """``response.set_cookie``, ``delete_cookie`` and ``background``."""

    #: Cookies to set, rendered into ``Set-Cookie`` headers as the app sends the response.
    cookies: list[Cookie] | None = None
    #: Calls to make once the response has been sent (``background``).
    background_tasks: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] | None = None

    if TYPE_CHECKING:
        headers: Headers

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | int | float | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Set a cookie: ``Secure`` over HTTPS unless ``secure`` says, ``HttpOnly``, ``Lax``.

        ``expires`` is a ``datetime``, a number of seconds from now or an HTTP date.

        Raises:
            ValueError: a name, value or attribute a ``Set-Cookie`` header cannot carry.
        """
        cookie = Cookie(key, value, max_age, expires, path, domain, secure, httponly, samesite)
        if self.cookies is None:
            self.cookies = []
        self.cookies.append(cookie)

    def delete_cookie(
        self,
        key: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Tell the client to drop cookie ``key`` (give the ``path`` and ``domain`` it had)."""
        self.set_cookie(
            key,
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    def write_cookies(self, *, https: bool) -> None:
        """Render the cookies set so far into ``Set-Cookie`` headers (the app calls this)."""
        cookies, self.cookies = self.cookies or [], None
        for cookie in cookies:
            self.headers.raw.append(
                (b"set-cookie", cookie.header_value(https=https).encode("latin-1"))
            )

    def background(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Call ``await func(*args)`` after the response has been sent; errors are logged.

        The connection's next request waits for it, and so does the server's graceful drain
        while the connection is open.
        """
        if self.background_tasks is None:
            self.background_tasks = []
        self.background_tasks.append((func, args))

    async def run_background(self) -> None:
        """Run the ``background`` calls in order, logging (not raising) their errors."""
        tasks, self.background_tasks = self.background_tasks or [], None
        for func, args in tasks:
            try:
                await func(*args)
            except Exception:
                log.exception("background task %s failed", getattr(func, "__qualname__", func))
