"""Cookies: the ``Cookie`` request header read as RFC 6265 says, ``Set-Cookie`` written safely.

Reading never fails: a hostile or garbled header gives the pairs that are well formed and
skips the rest. Writing refuses (``ValueError``) a name or value that could end the header or
smuggle another attribute, instead of quoting it silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate
from typing import Literal

__all__ = ["Cookie", "SameSite", "parse_cookie_header"]

SameSite = Literal["lax", "strict", "none"]

# RFC 9110 token characters: what a cookie name may be.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 6265 4.1.1 cookie-octet: no controls, whitespace, DQUOTE, comma, semicolon or backslash.
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$")
# Path and Domain attribute values: no controls and no ';' (RFC 6265 4.1.1 av-octet).
_ATTRIBUTE = re.compile(r"^[\x20-\x3a\x3c-\x7e]*$")


def parse_cookie_header(header: str) -> dict[str, str]:
    """The cookies of a ``Cookie`` header: ``"a=1; b=2"`` is ``{"a": "1", "b": "2"}``.

    The first of several cookies with one name wins (browsers send the most specific path
    first, RFC 6265 5.4). Pairs without ``=`` or with a name that is not a token are skipped;
    a value in double quotes loses them. Values are not decoded further.
    """
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip(" \t")
        value = value.strip(" \t")
        if not _TOKEN.match(name) or name in cookies:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


@dataclass
class Cookie:
    """A cookie a response sets, rendered as one ``Set-Cookie`` header.

    ``secure=None`` means *Secure when the response goes over HTTPS*; the app decides when it
    sends the response. The other defaults are the safe ones: ``HttpOnly``, ``SameSite=Lax``
    and ``Path=/``.
    """

    name: str
    value: str = ""
    max_age: int | None = None
    expires: datetime | int | float | str | None = None
    path: str | None = "/"
    domain: str | None = None
    secure: bool | None = None
    httponly: bool = True
    samesite: SameSite | None = "lax"

    def __post_init__(self) -> None:
        if not _TOKEN.match(self.name):
            raise ValueError(
                f"cookie name {self.name!r} must be a token (letters, digits, !#$%&'*+-.^_`|~)"
            )
        if not _COOKIE_VALUE.match(self.value):
            raise ValueError(
                f"cookie value {self.value!r} has a character a cookie cannot carry (space, "
                '",;\\ or a control); encode it first, e.g. urllib.parse.quote(value)'
            )
        for label, attr in (("path", self.path), ("domain", self.domain)):
            if attr is not None and not _ATTRIBUTE.match(attr):
                raise ValueError(f"cookie {label} {attr!r} may not contain ';' or controls")
        if isinstance(self.expires, str) and not _ATTRIBUTE.match(self.expires):
            raise ValueError(f"cookie expires {self.expires!r} may not contain ';' or controls")
        if self.samesite is not None:
            samesite = self.samesite.lower()
            if samesite not in ("lax", "strict", "none"):
                raise ValueError(
                    f"samesite must be 'lax', 'strict' or 'none', not {self.samesite!r}"
                )
            if samesite == "none" and self.secure is False:
                raise ValueError("samesite='none' needs secure=True: browsers refuse it otherwise")
            self.samesite = samesite  # type: ignore[assignment]

    def header_value(self, *, https: bool) -> str:
        """The ``Set-Cookie`` value; ``https`` says whether the response goes over TLS."""
        parts = [f"{self.name}={self.value}"]
        if self.path is not None:
            parts.append(f"Path={self.path}")
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.max_age is not None:
            parts.append(f"Max-Age={int(self.max_age)}")
        if self.expires is not None:
            parts.append(f"Expires={_http_date(self.expires)}")
        secure = self.secure if self.secure is not None else https or self.samesite == "none"
        if secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite is not None:
            parts.append(f"SameSite={self.samesite.capitalize()}")
        return "; ".join(parts)


def _http_date(value: datetime | int | float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return format_datetime(value.astimezone(UTC), usegmt=True)
    # A number is seconds from now, as Starlette's expires= takes it.
    import time

    return formatdate(time.time() + value, usegmt=True)
