"""Certificate files replaced under a running ``framework serve`` are picked up without a signal.

A renewal tool that only writes new files (each replaced atomically) switches the certificate
new connections see, checked with ``openssl s_client``, while a load on kept-alive and on new
connections fails no request; a bad pair is refused with one log line and the old certificate
stays; ``--no-watch-certs`` turns the watching off.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from framework.load.runner import run
from framework.load.settings import Settings
from tests.conftest import TLSFiles, require_tool
from tests.e2e.test_mtls import serving
from tests.e2e.test_reload import HOSTS, issue

TIMEOUT = 10.0
#: Two looks at the files (2 s apart) see a change and then see it settled; a margin on top.
PICKUP_TIMEOUT = 15.0
WATCHING = re.compile(r"INFO framework: watching (\S+)")
RELOADED = re.compile(r"INFO framework\.tls: certificate reloaded from")
REFUSED = re.compile(r"certificate reload refused, keeping the old one: (.*)")
ACCESS = re.compile(r'"GET / HTTP/1.1" 200')


def s_client_serial(openssl: str, port: int, ca: Path) -> int:
    """The serial of the certificate ``openssl s_client`` is shown on a new connection."""
    shown = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-CAfile", str(ca), "-verify_return_error"],
        input=b"", capture_output=True, timeout=TIMEOUT, check=True,
    ).stdout  # fmt: skip
    begin = shown.index(b"-----BEGIN CERTIFICATE-----")
    end = shown.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    return x509.load_pem_x509_certificate(shown[begin:end]).serial_number


def wait_for_serial(openssl: str, port: int, ca: Path, serial: int) -> list[int]:
    """Poll new connections until one shows ``serial``; the serials seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + PICKUP_TIMEOUT
    for _ in range(1000):
        seen.append(s_client_serial(openssl, port, ca))
        if seen[-1] == serial or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # noqa: TID251 - the pace of a bounded poll, not a synchronisation
    return seen


def load_in_thread(settings: Settings, into: dict[str, Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.update(run(settings)), daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.tool
@pytest.mark.parametrize("trigger", ["file-watch", "sighup"])
def test_new_files_switch_the_served_serial_with_no_failed_request(
    trigger: str, tls_files: TLSFiles, tmp_path: Path
) -> None:
    openssl = require_tool("openssl")
    cert, key, old_serial = issue(tls_files.ca, tmp_path, "server")
    extra = ["--no-watch-certs"] if trigger == "sighup" else []
    with serving(
        "examples.hello:app", "--certfile", str(cert), "--keyfile", str(key), "--no-access-log",
        *extra, home=tmp_path / "home",
    ) as served:  # fmt: skip
        if trigger == "file-watch":
            served.wait_for(WATCHING)
        url = f"https://127.0.0.1:{served.port}/"
        kept: dict[str, Any] = {}
        fresh: dict[str, Any] = {}
        loads = [
            load_in_thread(Settings(url, 4, 10.0, warmup=0.0, ca=str(tls_files.ca_cert)), kept),
            load_in_thread(
                Settings(url, 2, 10.0, warmup=0.0, ca=str(tls_files.ca_cert), new_connection=True),
                fresh,
            ),
        ]
        assert s_client_serial(openssl, served.port, tls_files.ca_cert) == old_serial
        renewed = tls_files.ca.issue(HOSTS)
        mark = served.mark()
        renewed.write(cert, key, force=True)  # as a renewal tool does: new files
        if trigger == "sighup":
            served.process.send_signal(signal.SIGHUP)
        new_serial = renewed.certificate.serial_number
        seen = wait_for_serial(openssl, served.port, tls_files.ca_cert, new_serial)
        served.wait_for(RELOADED, after=mark)
        after = [s_client_serial(openssl, served.port, tls_files.ca_cert) for _ in range(3)]
        for thread in loads:
            thread.join(TIMEOUT + 20.0)
    assert seen[-1] == new_serial, seen
    assert set(seen) <= {old_serial, new_serial}
    assert after == [new_serial] * 3
    for result in (kept, fresh):
        assert result["requests"] > 100, result
        assert sum(result["errors"].values()) == 0, result["errors"]


@pytest.mark.slow
@pytest.mark.tool
def test_a_bad_replacement_is_refused_once_and_the_old_certificate_stays(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    openssl = require_tool("openssl")
    cert, key, old_serial = issue(tls_files.ca, tmp_path, "server")
    with serving(
        "examples.hello:app", "--certfile", str(cert), "--keyfile", str(key),
        home=tmp_path / "home",
    ) as served:  # fmt: skip
        served.wait_for(WATCHING)
        other = tls_files.ca.issue(HOSTS)
        mark = served.mark()
        other.write(
            cert, tmp_path / "other.key", force=True
        )  # a new certificate, the old key: no match
        refused = served.wait_for(REFUSED, after=mark, timeout=PICKUP_TIMEOUT)
        assert "does not match" in refused.group(1)
        assert s_client_serial(openssl, served.port, tls_files.ca_cert) == old_serial
        good = tls_files.ca.issue(HOSTS)
        good.write(cert, key, force=True)
        seen = wait_for_serial(
            openssl, served.port, tls_files.ca_cert, good.certificate.serial_number
        )
        assert seen[-1] == good.certificate.serial_number
        served.drain()
        assert sum(bool(REFUSED.search(line)) for line in served.seen[mark:]) == 1


def test_no_watch_certs_turns_the_watching_off(tls_files: TLSFiles, tmp_path: Path) -> None:
    with serving(
        "examples.hello:app",
        "--certfile", str(tls_files.server_cert), "--keyfile", str(tls_files.server_key),
        "--no-watch-certs", home=tmp_path / "home",
    ) as served:  # fmt: skip
        served.wait_for(re.compile(r"serving on"))
    assert not any(WATCHING.search(line) for line in served.rest())
