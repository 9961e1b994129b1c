"""``Cookies``: the client's cookie jar, with the rules browsers apply to which cookie goes where.

This module owns keeping the cookies servers set (``Set-Cookie``, on every response,
redirects included) and choosing the ones a request carries: the standard library's
``http.cookiejar`` applies the domain, path, expiry and ``Secure`` rules (a secure cookie is
never sent over http://). It knows nothing of connections or of building requests: the
client asks it for a ``Cookie`` header value and hands it each response's headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeAlias

from ..messages import Headers

if TYPE_CHECKING:
    import http.cookiejar

# http.cookiejar (and the urllib.request it imports) load on the first cookie, not with the
# package: most programs that import the framework never keep one.

__all__ = ["Cookies", "CookiesLike", "merge_cookie_header"]

CookiesLike: TypeAlias = "Cookies | Mapping[str, str] | http.cookiejar.CookieJar"


class _Message:
    """The ``info()`` of a response, as ``http.cookiejar`` reads it."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return self._headers.get_all(name) or default


class _Response:
    def __init__(self, headers: Headers) -> None:
        self._message = _Message(headers)

    def info(self) -> _Message:
        return self._message


class Cookies:
    """A cookie jar: what servers set is kept and sent back where the cookie rules allow.

    Args:
        cookies: cookies to start with: a mapping of names to values (sent to every host),
            another ``Cookies``, or an ``http.cookiejar.CookieJar`` (shared, not copied).

    Example::

        client = Client(cookies={"session": "abc"})
        client.cookies.set("theme", "dark", domain="example.com")
        client.cookies["session"]          # the value, when one cookie has that name
    """

    def __init__(self, cookies: CookiesLike | None = None) -> None:
        self._jar: http.cookiejar.CookieJar | None = None
        if cookies is None:
            return
        import http.cookiejar

        if isinstance(cookies, http.cookiejar.CookieJar):
            self._jar = cookies
        elif isinstance(cookies, Cookies):
            for cookie in cookies.jar:
                self.jar.set_cookie(cookie)
        else:
            for name, value in cookies.items():
                self.set(name, value)

    @property
    def jar(self) -> http.cookiejar.CookieJar:
        """The standard library's jar holding the cookies."""
        if self._jar is None:
            import http.cookiejar

            self._jar = http.cookiejar.CookieJar()
        return self._jar

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Keep a cookie; with no ``domain`` it is sent to every host."""
        import http.cookiejar

        cookie = http.cookiejar.Cookie(
            version=0,
            name=name,
            value=value,
            port=None,
            port_specified=False,
            domain=domain,
            domain_specified=bool(domain),
            domain_initial_dot=domain.startswith("."),
            path=path,
            path_specified=True,
            secure=False,
            expires=None,
            discard=True,
            comment=None,
            comment_url=None,
            rest={},
        )
        self.jar.set_cookie(cookie)

    def get(self, name: str, default: str | None = None, domain: str | None = None) -> str | None:
        """The value of the cookie ``name`` (on ``domain``, when given), or ``default``.

        Raises:
            KeyError: more than one cookie has that name; pass ``domain``.
        """
        found = [c for c in self._jar or () if c.name == name and domain in (None, c.domain)]
        if len(found) > 1:
            where = ", ".join(sorted({c.domain or "(any host)" for c in found}))
            raise KeyError(f"several cookies are named {name!r} (domains {where}); pass domain=")
        return found[0].value if found and found[0].value is not None else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def delete(self, name: str, domain: str | None = None) -> None:
        """Forget the cookies named ``name`` (on ``domain``, when given)."""
        for cookie in [c for c in self._jar or () if c.name == name and domain in (None, c.domain)]:
            self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def clear(self) -> None:
        """Forget every cookie."""
        if self._jar is not None:
            self._jar.clear()

    def __contains__(self, name: object) -> bool:
        return self._jar is not None and any(c.name == name for c in self._jar)

    def __iter__(self) -> Iterator[str]:
        return iter([c.name for c in self._jar or ()])

    def __len__(self) -> int:
        return 0 if self._jar is None else len(self._jar)

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def maybe_any(self) -> bool:
        """False when the jar surely holds no cookie, found without iterating it (per request)."""
        # CookieJar keeps {domain: {path: {name: cookie}}}; forgetting a cookie may leave
        # empty levels behind, so True still means "look".
        return self._jar is not None and bool(self._jar._cookies)  # type: ignore[attr-defined]

    def header_for(self, url: str) -> str | None:
        """The ``Cookie`` header value for a request to ``url``, or ``None`` for no cookie."""
        if not len(self):
            return None
        import urllib.request

        request = urllib.request.Request(url)
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie")

    def extract(self, url: str, headers: Headers) -> None:
        """Keep the cookies set by a response from ``url`` (its ``Set-Cookie`` headers)."""
        if "set-cookie" not in headers:
            return
        import urllib.request

        request = urllib.request.Request(url)
        self.jar.extract_cookies(_Response(headers), request)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        names = ", ".join(f"{c.name}@{c.domain or '*'}{c.path}" for c in self._jar or ())
        return f"<Cookies [{names}]>"


def merge_cookie_header(jar_value: str | None, own: Mapping[str, str] | None) -> str | None:
    """The jar's ``Cookie`` value with a request's own cookies, which replace same-named ones."""
    if not own:
        return jar_value
    pairs = [p.strip() for p in (jar_value or "").split(";") if p.strip()]
    kept = [p for p in pairs if p.partition("=")[0] not in own]
    kept += [f"{name}={value}" for name, value in own.items()]
    return "; ".join(kept)
