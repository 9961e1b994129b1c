"""``SyncClient`` and ``framework.get(url)`` and friends: the client for scripts, without async.

This module owns running the async ``Client`` on a private event loop, one call at a time
(calls from several threads take turns), and refusing to run inside a running event loop,
where blocking would stall everything else on it. Responses come back read whole, so
``content``, ``text`` and ``json()`` work as they do after ``await client.get()``. Streaming
is the async client's (``Client.stream``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar, Unpack

from .client import Client
from .cookies import Cookies
from .response import ClientResponse
from .shortcuts import BodyOptions, RequestOptions, Shortcuts

__all__ = ["SyncClient", "delete", "get", "head", "options", "patch", "post", "put", "request"]

T = TypeVar("T")


def _refuse_inside_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{what} blocks, and this thread is running an event loop it would stall: use "
        "`async with Client() as client: await client.get(url)`, or run it in a thread "
        "(`await asyncio.to_thread(framework.get, url)`)"
    )


class SyncClient(Shortcuts[ClientResponse]):
    """A ``Client`` for code without an event loop: each call blocks until the response is read.

    Takes ``Client``'s arguments and the same per-request options; the connection pool,
    the cookie jar and the TLS context live as long as the ``SyncClient``. Safe to share
    between threads (calls take turns); not for use inside ``async`` code.

    Example::

        with SyncClient(base_url="https://localhost:8443", ca="pki/ca.pem") as client:
            print(client.get("/users/7").raise_for_status().json())

    Raises:
        RuntimeError: a call is made from a thread running an event loop.
    """

    def __init__(self, base_url: str | None = None, **client_options: Any) -> None:
        self._client = Client(base_url, **client_options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def client(self) -> Client:
        """The async client doing the work (its ``cookies``, ``pool``, ...)."""
        return self._client

    @property
    def cookies(self) -> Cookies:
        """The cookie jar (``Client.cookies``)."""
        return self._client.cookies

    def _run(self, what: str, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            _refuse_inside_loop(what)
        except RuntimeError:
            coroutine.close()
            raise
        with self._lock:
            if self._closed:
                coroutine.close()
                raise RuntimeError("the SyncClient is closed; make a new one")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coroutine)

    def request(self, method: str, url: str, **options: Unpack[BodyOptions]) -> ClientResponse:
        """Send a request and read the whole response (``Client.request``'s arguments)."""
        return self._run(
            f"SyncClient.request({method!r}, ...)", self._client.request(method, url, **options)
        )

    def close(self) -> None:
        """Close every connection and the private loop; the client cannot be used afterwards."""
        _refuse_inside_loop("SyncClient.close()")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
            if loop is None:
                return
            try:
                loop.run_until_complete(self._client.aclose())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncClient {self._client!r}>"


def request(
    method: str,
    url: str,
    *,
    ca: Any = None,
    proxy: str | None = None,
    trust_env: bool = True,
    retries: int = 0,
    **options: Unpack[BodyOptions],
) -> ClientResponse:
    """One request from a script: a ``SyncClient`` made for it and closed after.

    Args:
        method, url: what to request (an absolute URL).
        ca: trust only these CA certificate file(s) instead of the system's.
        proxy, trust_env, retries: as for ``Client``.
        options: ``Client.request``'s (``headers``, ``params``, ``json``, ``data``, ...).

    Example::

        import framework
        print(framework.get("https://localhost:8443/", ca="pki/ca.pem").text)
    """
    _refuse_inside_loop(f"framework.{method.lower()}()")
    with SyncClient(ca=ca, proxy=proxy, trust_env=trust_env, retries=retries) as client:
        return client.request(method, url, **options)


def get(url: str, *, ca: Any = None, **options: Unpack[RequestOptions]) -> ClientResponse:
    """``request("GET", url, ...)``."""
    return request("GET", url, ca=ca, **options)


def head(url: str, *, ca: Any = None, **options: Unpack[RequestOptions]) -> ClientResponse:
    """``request("HEAD", url, ...)``."""
    return request("HEAD", url, ca=ca, **options)


def options(url: str, *, ca: Any = None, **options: Unpack[RequestOptions]) -> ClientResponse:
    """``request("OPTIONS", url, ...)``."""
    return request("OPTIONS", url, ca=ca, **options)


def delete(url: str, *, ca: Any = None, **options: Unpack[RequestOptions]) -> ClientResponse:
    """``request("DELETE", url, ...)``."""
    return request("DELETE", url, ca=ca, **options)


def post(url: str, *, ca: Any = None, **options: Unpack[BodyOptions]) -> ClientResponse:
    """``request("POST", url, ...)``."""
    return request("POST", url, ca=ca, **options)


def put(url: str, *, ca: Any = None, **options: Unpack[BodyOptions]) -> ClientResponse:
    """``request("PUT", url, ...)``."""
    return request("PUT", url, ca=ca, **options)


def patch(url: str, *, ca: Any = None, **options: Unpack[BodyOptions]) -> ClientResponse:
    """``request("PATCH", url, ...)``."""
    return request("PATCH", url, ca=ca, **options)
