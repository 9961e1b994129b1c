"""Signed-cookie sessions: ``SessionMiddleware(secret_key=...)`` and ``request.session``.

The session is a JSON object kept in the client's cookie, signed with HMAC-SHA256 so the
client can read it but not change it (as Starlette's and Flask's are: do not put secrets in
it). The signature covers the time it was made, so an old cookie expires on the server too.
Several keys rotate: the first signs, every one verifies, so a new key can be brought in
without logging everybody out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

from .cookies import SameSite
from .messages import Request, Response

__all__ = ["SESSION_MAX_AGE", "SessionMiddleware"]

#: How long a session cookie lasts, in seconds: two weeks, as Starlette's and Django's.
SESSION_MAX_AGE = 14 * 24 * 3600
_MAX_COOKIE = 4096  # what browsers keep of one cookie (RFC 6265 6.1's minimum)


class _Session(dict[str, Any]):
    """A session dict that knows whether it was changed."""

    modified = False

    def _touch(self) -> None:
        self.modified = True

    def __setitem__(self, key: str, value: Any) -> None:
        self._touch()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._touch()
        super().__delitem__(key)

    def clear(self) -> None:
        """Empty the session (its cookie is deleted)."""
        self._touch()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key`` and return its value."""
        self._touch()
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, setting it to ``default`` first when absent."""
        self._touch()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Set several keys."""
        self._touch()
        super().update(*args, **kwargs)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionMiddleware:
    """Keep ``request.session`` in a signed cookie.

    Args:
        secret_key: the signing key, or several, newest first: the first signs, all verify.
            At least 16 bytes; make one with ``python -c "import secrets;
            print(secrets.token_urlsafe(32))"``.
        cookie_name: the cookie's name.
        max_age: seconds a session lasts from when it was last written (two weeks).
        path, domain, samesite, httponly, secure: the cookie's attributes; ``secure=None``
            sets ``Secure`` whenever the response goes over HTTPS.

    Example::

        app.middleware(SessionMiddleware(secret_key=os.environ["SESSION_KEY"]))

        @app.post("/login")
        async def login(request: Request) -> str:
            request.session["user"] = "ada"
            return "welcome"
    """

    def __init__(
        self,
        secret_key: str | bytes | Sequence[str | bytes],
        *,
        cookie_name: str = "session",
        max_age: int = SESSION_MAX_AGE,
        path: str = "/",
        domain: str | None = None,
        samesite: SameSite = "lax",
        httponly: bool = True,
        secure: bool | None = None,
    ) -> None:
        keys = [secret_key] if isinstance(secret_key, str | bytes) else list(secret_key)
        if not keys:
            raise ValueError("SessionMiddleware needs at least one secret_key")
        self._keys = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in keys]
        for key in self._keys:
            if len(key) < 16:
                raise ValueError(
                    "a session secret_key must be at least 16 bytes; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        self.cookie_name = cookie_name
        self.max_age = max_age
        self._cookie: dict[str, Any] = {
            "path": path,
            "domain": domain,
            "samesite": samesite,
            "httponly": httponly,
            "secure": secure,
        }

    def _sign(self, payload: str, key: bytes) -> str:
        mac = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
        return _b64(mac)

    def encode(self, data: dict[str, Any], now: float | None = None) -> str:
        """``data`` as a signed cookie value (with the first key)."""
        body = _b64(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        payload = f"{body}.{int(time.time() if now is None else now):x}"
        return f"{payload}.{self._sign(payload, self._keys[0])}"

    def decode(self, value: str, now: float | None = None) -> dict[str, Any] | None:
        """The session in a cookie value, or ``None`` if it is forged, garbled or expired."""
        if len(value) > _MAX_COOKIE or not value.isascii():
            return None
        payload, _, signature = value.rpartition(".")
        if not payload:
            return None
        if not any(hmac.compare_digest(signature, self._sign(payload, key)) for key in self._keys):
            return None
        body, _, stamp = payload.partition(".")
        try:
            made = int(stamp, 16)
            data = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
            return None
        current = time.time() if now is None else now
        if not isinstance(data, dict) or current - made > self.max_age or made > current + 60:
            return None
        return data

    async def __call__(self, request: Request, call_next: Any) -> Response:
        """Load the session before the handler, save or delete its cookie after it."""
        raw = request.cookies.get(self.cookie_name)
        loaded = self.decode(raw) if raw else None
        before = _dump(loaded) if loaded else None
        session = _Session(loaded or {})
        request.state["session"] = session
        response: Response = await call_next(request)
        # A change inside a value (session["cart"].append(item)) does not pass through
        # __setitem__: compare the contents too.
        changed = session.modified or (before is not None and _dump(session) != before)
        if changed or (loaded is not None and not session):
            if session:
                value = self.encode(dict(session))
                if len(value) > _MAX_COOKIE:
                    raise ValueError(
                        f"the session is {len(value)} bytes signed, over the {_MAX_COOKIE} a "
                        "browser keeps; store less in it (an id, and the data on the server)"
                    )
                response.set_cookie(self.cookie_name, value, max_age=self.max_age, **self._cookie)
            elif raw is not None:
                response.delete_cookie(self.cookie_name, **self._cookie)
        return response
