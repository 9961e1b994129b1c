"""Pebble (Let's Encrypt's ACME test server) and its DNS, started on loopback for a test.

pebble-challtestsrv answers every A query with 127.0.0.1 (and no AAAA), so pebble's
validation authority connects back to the server under test on loopback: validation is real,
``PEBBLE_VA_ALWAYS_VALID`` is not used. Pebble's own HTTPS listener gets a certificate from a
throwaway CA, which the ACME client is told to trust (``ca_bundle``).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from framework.testing import ThrowawayCA


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (pebble's config needs them before it starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pebble:
    """A running pebble: where its directory is, what to trust, where it validates."""

    directory: str
    management: str
    ca_bundle: Path  # the throwaway CA that signed pebble's own HTTPS certificate
    http_port: int  # where pebble's VA connects for HTTP-01
    tls_port: int  # and for TLS-ALPN-01
    log: Path
    dns_management: str  # pebble-challtestsrv's API: /set-txt, /clear-txt (plain HTTP)

    def root_pem(self) -> bytes:
        """Pebble's issuing root (it makes a new one each run), from its management API."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"{self.management}/roots/0", context=context, timeout=10) as r:
            data: bytes = r.read()
        return data


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a port with a bounded deadline
    raise RuntimeError(f"{what} did not listen on {port} within 15 s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # by its PID, through the Popen that started it
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def run_pebble(
    pebble: str, challtestsrv: str, workdir: Path, *, nonce_reject: int = 0
) -> Iterator[Pebble]:
    """Start pebble-challtestsrv (DNS only) and pebble on free loopback ports."""
    ca = ThrowawayCA("pebble listener test CA")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        files = ca.server_certificate(("localhost", "127.0.0.1"))
        dns_port, dns_mgmt = free_port(), free_port()
        acme_port, mgmt_port = free_port(), free_port()
        http_port, tls_port = free_port(), free_port()
        dns_log = workdir / "challtestsrv.log"
        with dns_log.open("wb") as out:
            dns = subprocess.Popen(
                [challtestsrv, "-dns01", f"127.0.0.1:{dns_port}", "-http01", "",
                 "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_mgmt}",
                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(dns)
        _wait_listening(dns_mgmt, dns, "pebble-challtestsrv", dns_log)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{acme_port}",
                "managementListenAddress": f"127.0.0.1:{mgmt_port}",
                "certificate": str(files.cert),
                "privateKey": str(files.key),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        config_path = workdir / "pebble.json"
        config_path.write_text(json.dumps(config))
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(nonce_reject),
            # Every order validates anew: a test of a refused validation must not be passed
            # by an authorization pebble kept from an earlier order (its default reuses half).
            "PEBBLE_AUTHZREUSE": "0",
        }
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        pebble_log = workdir / "pebble.log"
        with pebble_log.open("wb") as out:
            proc = subprocess.Popen(
                [pebble, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        procs.append(proc)
        _wait_listening(acme_port, proc, "pebble", pebble_log)
        _wait_listening(mgmt_port, proc, "pebble", pebble_log)
        yield Pebble(
            directory=f"https://127.0.0.1:{acme_port}/dir",
            management=f"https://127.0.0.1:{mgmt_port}",
            ca_bundle=ca.cert_path,
            http_port=http_port,
            tls_port=tls_port,
            log=pebble_log,
            dns_management=f"http://127.0.0.1:{dns_mgmt}",
        )
    finally:
        for proc in reversed(procs):
            _stop(proc)
        ca.close()
