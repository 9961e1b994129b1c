"""``CORSMiddleware``: which other origins' pages may call this app from a browser.

Cross-origin resource sharing as the Fetch standard defines it: a preflight (``OPTIONS`` with
``Origin`` and ``Access-Control-Request-Method``) is answered here, without reaching the
routes; other requests from an allowed origin get ``Access-Control-Allow-Origin`` (and the
credentials and exposed headers) on their response. ``Vary: Origin`` is on every response
whose CORS headers depend on the origin, so a shared cache never hands one site's answer to
another.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from ..messages import Request, Response
from .vary import add_vary

__all__ = ["CORSMiddleware"]

# Request headers a page may send cross-origin without a preflight naming them (Fetch).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
_ORIGIN = re.compile(r"(?:[a-z][a-z0-9+.-]*://[^/?#\s]+|null)")


def _names(values: Sequence[str] | str) -> list[str]:
    return [values] if isinstance(values, str) else list(values)


class CORSMiddleware:
    """Let pages from ``allow_origins`` call this app with ``fetch``/``XMLHttpRequest``.

    Args:
        allow_origins: origins allowed (``"https://app.example"``: scheme, host and port, no
            path), or ``"*"`` for any.
        allow_origin_regex: origins matching this regular expression (whole) are allowed too.
        allow_methods: methods a preflight may ask for, or ``"*"``.
        allow_headers: request headers a preflight may ask for (the CORS-safelisted ones
            always are), or ``"*"``.
        allow_credentials: let the page send cookies and read the answer
            (``Access-Control-Allow-Credentials: true``); needs listed origins, not ``"*"``.
        expose_headers: response headers the page may read beyond the safelisted ones.
        max_age: seconds a browser may keep a preflight's answer (600, as Starlette).

    A preflight from an origin, method or header not allowed is answered 400 and names which;
    the browser then refuses the call. Other requests reach the routes either way: without
    CORS headers on its response, the browser hides it from the page.

    Example::

        app.middleware(CORSMiddleware(["https://app.example"], allow_credentials=True))
    """

    def __init__(
        self,
        allow_origins: Sequence[str] | str = (),
        *,
        allow_origin_regex: str | None = None,
        allow_methods: Sequence[str] | str = ("GET", "HEAD", "POST"),
        allow_headers: Sequence[str] | str = (),
        allow_credentials: bool = False,
        expose_headers: Sequence[str] | str = (),
        max_age: int = 600,
    ) -> None:
        origins = _names(allow_origins)
        self.any_origin = "*" in origins
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin.lower().rstrip("/")):
                raise ValueError(
                    f"CORS origin {origin!r} is not an origin; write scheme://host[:port] "
                    "with no path, as in 'https://app.example:8443', or '*'"
                )
            if origin.endswith("/") and origin != "*":
                raise ValueError(
                    f"CORS origin {origin!r} ends in '/'; browsers send origins without "
                    f"it: write {origin.rstrip('/')!r}"
                )
        if self.any_origin and allow_credentials:
            raise ValueError(
                "allow_origins='*' with allow_credentials=True would let every site act "
                "with your users' cookies; list the origins allowed instead"
            )
        if max_age < 0:
            raise ValueError(f"max_age must be 0 or more seconds, not {max_age}")
        self.origins = frozenset(o.lower() for o in origins if o != "*")
        self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        methods = [m.upper() for m in _names(allow_methods)]
        self.any_method = "*" in methods
        self.methods = frozenset(methods) - {"*"}
        headers = [h.lower() for h in _names(allow_headers)]
        self.any_header = "*" in headers
        self.headers = (frozenset(headers) - {"*"}) | SAFELISTED_HEADERS
        self.credentials = allow_credentials
        self.expose = ", ".join(_names(expose_headers))
        self.max_age = str(max_age)
        # Only "*" without credentials is the same answer for every origin.
        self.varies = not (self.any_origin and self.origin_regex is None)

    def allows_origin(self, origin: str) -> bool:
        """True when pages from ``origin`` may call this app."""
        if self.any_origin or origin.lower() in self.origins:
            return True
        return self.origin_regex is not None and self.origin_regex.fullmatch(origin) is not None

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Answer a preflight here; add the CORS headers to any other response."""
        origin = request.headers.get("origin")
        if origin is None:
            response = await call_next(request)
            if self.varies:
                add_vary(response.headers, "Origin")
            return response
        method = request.headers.get("access-control-request-method")
        if request.method == "OPTIONS" and method is not None:
            return self._preflight(request, origin, method)
        response = await call_next(request)
        if self.varies:
            add_vary(response.headers, "Origin")
        if self.allows_origin(origin):
            headers = response.headers
            headers["access-control-allow-origin"] = self._allow_origin(origin)
            if self.credentials:
                headers["access-control-allow-credentials"] = "true"
            if self.expose:
                headers["access-control-expose-headers"] = self.expose
        return response

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.any_origin and not self.credentials else origin

    def _preflight(self, request: Request, origin: str, method: str) -> Response:
        refused = []
        if not self.allows_origin(origin):
            refused.append("origin")
        if not (self.any_method or method.upper() in self.methods):
            refused.append("method")
        asked = request.headers.get("access-control-request-headers") or ""
        names = [h.strip().lower() for h in asked.split(",") if h.strip()]
        if not self.any_header and any(name not in self.headers for name in names):
            refused.append("headers")
        if refused:
            response = Response(f"Disallowed CORS {', '.join(refused)}", status=400)
        else:
            response = Response(b"", status=204)
            headers = response.headers
            headers["access-control-allow-origin"] = self._allow_origin(origin)
            headers["access-control-allow-methods"] = (
                method.upper() if self.any_method else ", ".join(sorted(self.methods))
            )
            if names:
                # Echoed as asked: "*" is no wildcard for requests with credentials.
                headers["access-control-allow-headers"] = ", ".join(names)
            if self.credentials:
                headers["access-control-allow-credentials"] = "true"
            headers["access-control-max-age"] = self.max_age
        if self.varies:
            add_vary(response.headers, "Origin")
        return response

    def __repr__(self) -> str:
        origins = "*" if self.any_origin else sorted(self.origins)
        return f"<CORSMiddleware origins={origins!r}>"
