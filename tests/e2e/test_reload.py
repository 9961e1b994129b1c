"""Certificate reload on a running server: under load, refused when bad, and by SIGHUP.

A reload switches new handshakes to the new certificate while kept-alive connections carry
on with the old one, with no failed request; a certificate that would not serve (wrong key,
expired, chain out of order) is refused and the old one stays in force.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from framework import pki
from framework.errors import CertificateError
from framework.messages import Request, Response
from tests.conftest import TLSFiles, serve_in_thread
from tests.e2e.test_mtls import serving

HOSTS = ["localhost", "127.0.0.1", "::1"]
WORKERS = 4
MAX_REQUESTS = 2_000  # per worker: a bound, never reached when the test passes
STEP_TIMEOUT = 10.0
# Requests each worker makes before the reload and again after it.
REQUESTS_PER_PHASE = 25


async def ok(request: Request) -> Response:
    return Response(body=b"ok")


def served_serial(port: int, tls_files: TLSFiles, host: str = "localhost") -> int:
    """The serial of the certificate a new connection is shown (``host`` as SNI)."""
    ctx = tls_files.client_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def issue(ca: pki.CertificateAuthority, directory: Path, name: str) -> tuple[Path, Path, int]:
    """A localhost certificate with a new serial, written to ``directory``."""
    issued = ca.issue(HOSTS)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    issued.write(cert, key)
    return cert, key, issued.certificate.serial_number


@dataclass
class Load:
    """Workers each doing GETs back to back on one kept-alive connection."""

    port: int
    context: ssl.SSLContext
    done: list[int] = field(default_factory=lambda: [0] * WORKERS)
    failures: list[str] = field(default_factory=list)
    serials: list[set[int]] = field(default_factory=lambda: [set() for _ in range(WORKERS)])
    new_sockets: list[int] = field(default_factory=lambda: [0] * WORKERS)
    stop: threading.Event = field(default_factory=threading.Event)
    progress: threading.Condition = field(default_factory=threading.Condition)

    def run(self, worker: int) -> None:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context, timeout=STEP_TIMEOUT
        )
        first_sock = None
        try:
            for _ in range(MAX_REQUESTS):
                if self.stop.is_set():
                    break
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
                if (response.status, body) != (200, b"ok"):
                    raise AssertionError(f"got {response.status} {body!r}")
                assert conn.sock is not None
                if first_sock is None:
                    first_sock = conn.sock
                elif conn.sock is not first_sock:
                    self.new_sockets[worker] += 1
                der = conn.sock.getpeercert(binary_form=True)
                assert der is not None
                self.serials[worker].add(x509.load_der_x509_certificate(der).serial_number)
                with self.progress:
                    self.done[worker] += 1
                    self.progress.notify_all()
        except Exception as exc:  # reported by the test
            self.failures.append(f"worker {worker}: {exc!r}")
        finally:
            conn.close()
            with self.progress:
                self.done[worker] = MAX_REQUESTS  # wake the waiter either way
                self.progress.notify_all()

    def wait_until_each_did(self, count: int) -> None:
        with self.progress:
            reached = self.progress.wait_for(lambda: min(self.done) >= count, timeout=STEP_TIMEOUT)
        assert reached, f"requests done per worker: {self.done}"


def test_reload_under_load_fails_no_request_and_new_connections_see_the_new_serial(
    loop_name: str, tls_files: TLSFiles, tmp_path: Path
) -> None:
    old_serial = pki.load_certificates(tls_files.server_cert)[0].serial_number
    new_cert, new_key, new_serial = issue(tls_files.ca, tmp_path, "new")
    with serve_in_thread(ok, tls_files, loop=loop_name) as server:
        load = Load(server.port, tls_files.client_context())
        workers = [
            threading.Thread(target=load.run, args=(i,), name=f"load-{i}") for i in range(WORKERS)
        ]
        for worker in workers:
            worker.start()
        try:
            load.wait_until_each_did(REQUESTS_PER_PHASE)
            before = list(load.done)
            server.reload_certificate(new_cert, new_key)
            seen_after_reload = served_serial(server.port, tls_files)
            load.wait_until_each_did(max(before) + REQUESTS_PER_PHASE)
        finally:
            load.stop.set()
            for worker in workers:
                worker.join(STEP_TIMEOUT)
        assert not any(worker.is_alive() for worker in workers)
        assert load.failures == []
        assert load.new_sockets == [0] * WORKERS  # every connection was kept alive throughout
        assert load.serials == [{old_serial}] * WORKERS  # and kept its certificate
        assert seen_after_reload == new_serial
        assert served_serial(server.port, tls_files, host="127.0.0.1") == new_serial  # no SNI


MakeFiles = Callable[[pki.CertificateAuthority, Path], tuple[Path, Path]]


def _mismatched_key(ca: pki.CertificateAuthority, directory: Path) -> tuple[Path, Path]:
    cert, _, _ = issue(ca, directory, "a")
    _, key, _ = issue(ca, directory, "b")
    return cert, key


def _expired(ca: pki.CertificateAuthority, directory: Path) -> tuple[Path, Path]:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    issued = ca.issue(HOSTS, days=2, now=past)
    issued.write(directory / "old.pem", directory / "old.key")
    return directory / "old.pem", directory / "old.key"


def _chain_out_of_order(ca: pki.CertificateAuthority, directory: Path) -> tuple[Path, Path]:
    intermediate = pki.CertificateAuthority.create(directory / "intermediate", parent=ca)
    issued = intermediate.issue(HOSTS)
    leaf, issuer = issued.chain
    # The root between the leaf and the intermediate that signed it.
    pki.write_file(directory / "chain.pem", pki.certificates_pem([leaf, ca.certificate, issuer]))
    pki.write_private_key(directory / "chain.key", issued.private_key)
    return directory / "chain.pem", directory / "chain.key"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_mismatched_key, "does not match the first certificate"),
        (_expired, "expired on"),
        (_chain_out_of_order, "did not issue certificate 1"),
    ],
    ids=["mismatched-key", "expired", "chain-out-of-order"],
)
def test_reload_refuses_a_bad_certificate_and_keeps_the_old_one(
    make: MakeFiles,
    reason: str,
    loop_name: str,
    tls_files: TLSFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = make(tls_files.ca, tmp_path)
    old_serial = pki.load_certificates(tls_files.server_cert)[0].serial_number
    with serve_in_thread(ok, tls_files, loop=loop_name) as server:
        assert server.certificates is not None
        with (
            caplog.at_level(logging.ERROR, logger="framework.server"),
            pytest.raises(CertificateError, match=reason),
        ):
            server.reload_certificate(cert, key)
        assert served_serial(server.port, tls_files) == old_serial
        assert server.certificates.certfile == tls_files.server_cert
    refused = [r for r in caplog.records if r.name == "framework.server"]
    assert len(refused) == 1
    assert refused[0].getMessage().startswith("certificate reload refused, keeping the old one")
    assert reason in refused[0].getMessage()


RELOADED = re.compile(r"INFO framework\.tls: certificate reloaded from (\S+)")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_reload_sighup_rereads_the_files_in_place(
    loop: str, tls_files: TLSFiles, tmp_path: Path
) -> None:
    cert, key, old_serial = issue(tls_files.ca, tmp_path, "server")
    with serving(
        "examples.hello:app",
        "--certfile", str(cert),
        "--keyfile", str(key),
        home=tmp_path / "home",
        loop=loop,
    ) as served:  # fmt: skip
        assert served_serial(served.port, tls_files) == old_serial
        renewed = tls_files.ca.issue(HOSTS)
        renewed.write(cert, key, force=True)  # each file replaced atomically, as a renewal does
        mark = served.mark()
        served.process.send_signal(signal.SIGHUP)
        served.wait_for(RELOADED, after=mark)
        # The reload happened on the server's loop; poll new connections until they show it.
        deadline = time.monotonic() + 5.0
        serial = old_serial
        for _ in range(500):
            serial = served_serial(served.port, tls_files)
            if serial != old_serial or time.monotonic() > deadline:
                break
        assert serial == renewed.certificate.serial_number
