"""Shared fixtures: a test CA with server and client certificates, and external tools.

Tests never turn certificate verification off: they trust a CA made for the session.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import shutil
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework import pki
from framework.deploy import new_event_loop
from framework.http11 import Driver
from framework.server import Handler, Server
from framework.testing import LoopThread, ThrowawayCA
from framework.tls import CertificateStore, ClientCertMode

# FRAMEWORK_TEST_H11_ONLY=1 runs the suite with the plain-message path off in every driver the
# tests make (servers and clients alike), as Server(h11_only=True) and Client(h11_only=True) do;
# .ci/run runs the end-to-end server and client tests that way too.
H11_ONLY = os.environ.get("FRAMEWORK_TEST_H11_ONLY") == "1"
if H11_ONLY:
    Driver.__init__.__kwdefaults__["plain"] = False  # type: ignore[index]


def pytest_report_header() -> str:
    return "drivers: h11 only (FRAMEWORK_TEST_H11_ONLY=1)" if H11_ONLY else "drivers: plain path on"


def require_tool(name: str) -> str:
    """Return the path of program ``name``; skip the test when it is missing (fail under CI)."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install {name}); .ci/run installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> None:
    """Skip the test when module ``name`` cannot be imported (fail under CI, which installs
    the test extra)."""
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class TLSFiles:
    """A CA made for the test session, and certificates it issued (PEM files)."""

    ca: pki.CertificateAuthority
    ca_cert: Path
    server_cert: Path  # localhost, 127.0.0.1, ::1; leaf then chain
    server_key: Path
    client_cert: Path  # clientAuth, CN "test-client"
    client_key: Path

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        """A strict stdlib client context that trusts this CA."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TLSFiles]:
    """A session CA with a localhost server certificate and a client certificate.

    The CA is the one users get from ``framework.testing`` (``ThrowawayCA``), so the whole
    suite runs on what the testing helpers hand out.
    """
    with ThrowawayCA(name="framework test CA") as throwaway:
        server = throwaway.server_certificate()
        client = throwaway.client_certificate("test-client")
        yield TLSFiles(
            ca=throwaway.authority,
            ca_cert=throwaway.cert_path,
            server_cert=server.cert,
            server_key=server.key,
            client_cert=client.cert,
            client_key=client.key,
        )


@contextmanager
def serve_in_thread(
    handler: Handler,
    tls_files: TLSFiles | None,
    *,
    loop: str = "asyncio",
    client_cert: ClientCertMode | None = None,
    **server_options: Any,
) -> Iterator[Server]:
    """Run ``handler`` on 127.0.0.1 and an ephemeral port in a thread, for blocking clients.

    ``tls_files=None`` serves plain HTTP. ``client_cert`` turns on mutual TLS with the test CA.
    The server is drained and its thread joined on exit.
    """
    store = None
    if tls_files is not None:
        store = CertificateStore(
            tls_files.server_cert,
            tls_files.server_key,
            client_ca=tls_files.ca_cert if client_cert else None,
            client_cert=client_cert or "required",
        )
    factory = new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with LoopThread(factory, name="test-server") as thread:
        server = Server(handler, host="127.0.0.1", port=0, ssl=store, **server_options)
        thread.run(server.start(), timeout=30)
        try:
            yield server
        finally:
            thread.run(server.aclose(timeout=5), timeout=30)


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_name(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on asyncio's loop and once on uvloop's."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Undo what an in-process ``serve()`` does to logging (its access-log handler on a
    stream pytest closes afterwards, ``propagate`` off), so that later tests see records."""
    loggers = [logging.getLogger(name) for name in ("framework", "framework.access")]
    saved = [(logger, logger.handlers[:], logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, handlers, propagate, level in saved:
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
