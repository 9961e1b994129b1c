"""Mutual TLS end to end: ``framework serve examples.mtls:app --client-ca`` as a user runs it.

A client with a certificate from the client CA is served and greeted by its name; one without
a certificate, or with one from another CA, is refused in the handshake, and the server says
why in one log line. With ``--client-cert optional`` the app answers 401 itself.
"""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from framework import pki
from tests.conftest import TLSFiles, require_tool
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, Served, environment, serve_cli

NO_CERTIFICATE = re.compile(
    r"WARNING framework\.server: TLS handshake refused: client certificate required "
    r"\(the client sent none\)$"
)
UNTRUSTED = re.compile(
    r"WARNING framework\.server: TLS handshake refused: client certificate verify failed: "
    r"unable to get local issuer certificate$"
)


@contextmanager
def serving(app: str, *args: str, home: Path, loop: str = "uvloop") -> Iterator[Served]:
    """Run ``python -m framework serve APP --port 0 ARGS`` until the block ends (then SIGTERM)."""
    command = [app, "--port", "0", "--loop", loop, *args]
    with serve_cli(command, env=environment(home), cwd=REPO) as served:
        served.port = int(served.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        yield served
    assert not any("Traceback" in line for line in served.seen), served.seen


@dataclass(frozen=True)
class Intruder:
    """A client certificate from a CA the server does not trust."""

    cert: Path
    key: Path


@pytest.fixture(scope="module")
def intruder(tmp_path_factory: pytest.TempPathFactory) -> Intruder:
    base = tmp_path_factory.mktemp("intruder")
    other = pki.CertificateAuthority.create(base / "ca", name="some other CA")
    issued = other.issue(["intruder"], client=True)
    issued.write(base / "intruder.pem", base / "intruder.key")
    return Intruder(base / "intruder.pem", base / "intruder.key")


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def required(
    request: pytest.FixtureRequest, tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``examples.mtls:app`` refusing clients without a certificate from the test CA."""
    with serving(
        "examples.mtls:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key),
        "--client-ca", str(tls_files.ca_cert),
        home=tmp_path_factory.mktemp("home"),
        loop=request.param,
    ) as served:  # fmt: skip
        yield served


@pytest.fixture(scope="module")
def optional(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``examples.mtls:app`` with ``--client-cert optional``: the app decides."""
    with serving(
        "examples.mtls:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key),
        "--client-ca", str(tls_files.ca_cert),
        "--client-cert", "optional",
        home=tmp_path_factory.mktemp("home"),
    ) as served:  # fmt: skip
        yield served


def get(port: int, context: ssl.SSLContext) -> tuple[int, str]:
    """GET / with the stdlib client; the status and the body."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def with_cert(tls_files: TLSFiles, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = tls_files.client_context()
    ctx.load_cert_chain(cert, key)
    return ctx


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("curl"), "--silent", "--show-error", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- Python's ssl --------------------------------------------------------------------------


def test_mtls_client_certificate_name_reaches_the_handler(
    required: Served, tls_files: TLSFiles
) -> None:
    status, body = get(required.port, tls_files.client_context(with_cert=True))
    assert (status, body) == (200, "Hello, test-client!\n")


def test_mtls_without_a_certificate_is_refused_with_a_log_line(
    required: Served, tls_files: TLSFiles
) -> None:
    mark = required.mark()
    # TLS 1.3: the client's side of the handshake completes before the server checks the
    # (empty) certificate; the refusal then ends the connection before any response.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(required.port, tls_files.client_context())
    required.wait_for(NO_CERTIFICATE, after=mark)


def test_mtls_certificate_from_another_ca_is_refused_with_a_log_line(
    required: Served, tls_files: TLSFiles, intruder: Intruder
) -> None:
    mark = required.mark()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(required.port, with_cert(tls_files, intruder.cert, intruder.key))
    required.wait_for(UNTRUSTED, after=mark)


def test_mtls_refusal_leaves_the_server_serving(required: Served, tls_files: TLSFiles) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(required.port, tls_files.client_context())
    status, _ = get(required.port, tls_files.client_context(with_cert=True))
    assert status == 200


# --- curl ----------------------------------------------------------------------------------


def test_mtls_curl_with_a_certificate_is_greeted(required: Served, tls_files: TLSFiles) -> None:
    result = curl(
        "--cacert", str(tls_files.ca_cert),
        "--cert", str(tls_files.client_cert),
        "--key", str(tls_files.client_key),
        f"https://127.0.0.1:{required.port}/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, test-client!\n"


def test_mtls_curl_without_a_certificate_is_refused(required: Served, tls_files: TLSFiles) -> None:
    mark = required.mark()
    result = curl("--cacert", str(tls_files.ca_cert), f"https://127.0.0.1:{required.port}/")
    assert result.returncode != 0
    assert result.stdout == ""
    required.wait_for(NO_CERTIFICATE, after=mark)


def test_mtls_curl_with_a_certificate_from_another_ca_is_refused(
    required: Served, tls_files: TLSFiles, intruder: Intruder
) -> None:
    mark = required.mark()
    result = curl(
        "--cacert", str(tls_files.ca_cert),
        "--cert", str(intruder.cert),
        "--key", str(intruder.key),
        f"https://127.0.0.1:{required.port}/",
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    required.wait_for(UNTRUSTED, after=mark)


# --- --client-cert optional ----------------------------------------------------------------


def test_mtls_optional_without_a_certificate_gets_401(
    optional: Served, tls_files: TLSFiles
) -> None:
    mark = optional.mark()
    status, body = get(optional.port, tls_files.client_context())
    assert status == 401
    assert "client certificate is required" in body
    optional.drain()
    assert not any("TLS handshake refused" in line for line in optional.seen[mark:])


def test_mtls_optional_with_a_certificate_is_greeted(optional: Served, tls_files: TLSFiles) -> None:
    status, body = get(optional.port, tls_files.client_context(with_cert=True))
    assert (status, body) == (200, "Hello, test-client!\n")


def test_mtls_optional_still_refuses_a_certificate_from_another_ca(
    optional: Served, tls_files: TLSFiles, intruder: Intruder
) -> None:
    mark = optional.mark()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(optional.port, with_cert(tls_files, intruder.cert, intruder.key))
    optional.wait_for(UNTRUSTED, after=mark)


def test_mtls_optional_curl_without_a_certificate_gets_401(
    optional: Served, tls_files: TLSFiles
) -> None:
    result = curl(
        "--cacert", str(tls_files.ca_cert), "-w", "%{http_code}",
        f"https://127.0.0.1:{optional.port}/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("401")
