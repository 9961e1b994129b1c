"""pytest fixtures for testing an app over real HTTPS; loaded by installing the package.

Fixtures (none is autouse; a test that asks for none of them pays nothing):

``framework_ca``
    A ``ThrowawayCA`` for the session (ECDSA, in a temporary directory removed at the end).
``framework_app``
    The app to serve. Override it (``def framework_app(): return app``) or mark the test or
    module: ``@pytest.mark.framework_app(app)`` or ``framework_app("myproject.main:app")``;
    the marker's keyword arguments are ``serve_app`` options (``client_cert="required"``,
    ``max_body_bytes=1024``, ...).
``framework_server_options``
    More ``serve_app`` options, ``{}`` unless overridden.
``framework_server``
    The app served for one test (a ``ServedApp``: ``url``, ``ca``, ``client()``, ``errors``),
    on its own event loop in a thread, so it serves synchronous tests (``asyncio.run``,
    ``curl``) and async ones alike; startup hooks run before the test, shutdown hooks after.
``framework_client``
    A ``Client`` bound to it, for async tests under pytest-asyncio.

Turn the plugin off with ``-p no:framework``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import Client
    from .testing import ServedApp, ThrowawayCA

try:  # already imported by pytest when installed, so this costs nothing
    import pytest_asyncio
except ImportError:  # sync tests still get framework_server
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "framework_app",
    "framework_ca",
    "framework_client",
    "framework_server",
    "framework_server_options",
]

_HOW = (
    "framework_server needs an app: override the framework_app fixture "
    "(@pytest.fixture def framework_app(): return app) or mark the test "
    '@pytest.mark.framework_app(app) or @pytest.mark.framework_app("package.module:app")'
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``framework_app`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "framework_app(app, **options): the app (or 'module:attribute') that the "
        "framework_server fixture serves, and serve_app options for it",
    )


def _load(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(
            f"framework_app({reference!r}): name the app as 'package.module:attribute'"
        )
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@pytest.fixture(scope="session")
def framework_ca() -> Iterator[ThrowawayCA]:
    """A throwaway CA shared by the session's tests; its files are removed at the end."""
    from .testing import ThrowawayCA

    with ThrowawayCA() as ca:
        yield ca


@pytest.fixture
def framework_app(request: pytest.FixtureRequest) -> Any:
    """The app ``framework_server`` serves: from the ``framework_app`` marker, or override it."""
    marker = request.node.get_closest_marker("framework_app")
    if marker is None or not marker.args:
        pytest.fail(_HOW, pytrace=False)
    app = marker.args[0]
    return _load(app) if isinstance(app, str) else app


@pytest.fixture
def framework_server_options() -> dict[str, Any]:
    """``serve_app`` options for ``framework_server`` (override it; ``{}`` by default)."""
    return {}


@pytest.fixture
def framework_server(
    request: pytest.FixtureRequest,
    framework_app: Any,
    framework_ca: ThrowawayCA,
    framework_server_options: dict[str, Any],
) -> Iterator[ServedApp]:
    """``framework_app`` served over HTTPS for one test, on an event loop in a thread."""
    from .testing import serve_app_in_thread

    options = dict(framework_server_options)
    marker = request.node.get_closest_marker("framework_app")
    if marker is not None:
        options.update(marker.kwargs)
    options.setdefault("ca", framework_ca)
    with serve_app_in_thread(framework_app, **options) as server:
        yield server


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def framework_client(framework_server: ServedApp) -> AsyncIterator[Client]:
        """A ``Client`` for ``framework_server`` (``base_url`` set, trusting its CA alone)."""
        async with framework_server.client() as client:
            yield client

else:

    @pytest.fixture
    def framework_client() -> None:
        """A ``Client`` for ``framework_server``; needs pytest-asyncio."""
        pytest.fail(
            "framework_client is an async fixture and needs pytest-asyncio "
            "(pip install pytest-asyncio); in a synchronous test use "
            "`async with framework_server.client() as client:` inside asyncio.run()",
            pytrace=False,
        )
