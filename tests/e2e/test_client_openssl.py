"""``Client`` against ``openssl s_server``: certificates made by the ``openssl`` command refused
for the right reason.

The certificates come from ``openssl req``/``x509``/``ca``, not from our own PKI code, so these
tests do not grade our CA with our client. A valid chain is accepted first (the control), then
an expired certificate, one for another host, a self-signed one, one from a CA the client does
not trust, and a chain missing its intermediate are each refused with ``CertificateVerifyError``.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.servers import free_port, wait_listening
from framework.client import Client
from framework.errors import CertificateVerifyError
from tests.conftest import require_tool

pytestmark = pytest.mark.tool

EXTENSIONS = """
[req]
distinguished_name = dn
[dn]
[v3_root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_intermediate]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_localhost]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:localhost,IP:127.0.0.1
[v3_other]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:other.test
[v3_self]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = DNS:localhost,IP:127.0.0.1
"""

# ``openssl ca`` is the 3.0 way to set validity dates in the past (-startdate/-enddate).
CA_CONFIG = """
[ca]
default_ca = CA_default
[CA_default]
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
"""


@dataclass(frozen=True)
class Files:
    """Certificates and keys made with the openssl command (PEM)."""

    dir: Path
    root: Path  # the CA the client trusts
    chain: Path  # good leaf for localhost, served with the intermediate
    leaf_only: Path  # the same leaf without its intermediate
    expired: Path  # leaf + intermediate, validity 2020-2021
    other_host: Path  # leaf for other.test + intermediate
    self_signed: Path
    untrusted: Path  # leaf from another root + that root

    def key(self, cert: Path) -> Path:
        return cert.with_suffix(".key")


def openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{result.stderr}")


def new_key_and_request(d: Path, name: str, cn: str) -> None:
    openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={cn}",
        "-config",
        "ext.cnf",
        cwd=d,
    )


def self_signed(d: Path, name: str, cn: str, extensions: str) -> None:
    openssl(
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "3650",
        "-subj",
        f"/CN={cn}",
        "-config",
        "ext.cnf",
        "-extensions",
        extensions,
        cwd=d,
    )


def sign(d: Path, name: str, issuer: str, extensions: str, serial: int) -> None:
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{issuer}.pem",
        "-CAkey",
        f"{issuer}.key",
        "-set_serial",
        str(serial),
        "-days",
        "90",
        "-sha256",
        "-extfile",
        "ext.cnf",
        "-extensions",
        extensions,
        "-out",
        f"{name}.pem",
        cwd=d,
    )


def served(d: Path, out: str, leaf: str, *chain: str) -> Path:
    """``out.pem`` (the leaf), ``out.key`` and, when given, ``out.chain`` (what follows it)."""
    path = d / f"{out}.pem"
    path.write_bytes((d / f"{leaf}.pem").read_bytes())
    path.with_suffix(".key").write_bytes((d / f"{leaf}.key").read_bytes())
    if chain:
        path.with_suffix(".chain").write_text("".join((d / f"{n}.pem").read_text() for n in chain))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    require_tool("openssl")
    d = tmp_path_factory.mktemp("openssl")
    (d / "ext.cnf").write_text(EXTENSIONS)
    self_signed(d, "root", "openssl test root", "v3_root")
    new_key_and_request(d, "intermediate", "openssl test intermediate")
    sign(d, "intermediate", "root", "v3_intermediate", 2)
    new_key_and_request(d, "leaf", "localhost")
    sign(d, "leaf", "intermediate", "v3_localhost", 3)
    new_key_and_request(d, "other", "other.test")
    sign(d, "other", "intermediate", "v3_other", 4)
    # Expired: signed by the intermediate with dates in the past.
    (d / "newcerts").mkdir()
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(CA_CONFIG.format(dir=d))
    new_key_and_request(d, "old", "localhost")
    openssl(
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-cert",
        "intermediate.pem",
        "-keyfile",
        "intermediate.key",
        "-in",
        "old.csr",
        "-out",
        "old.pem",
        "-notext",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20210101000000Z",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "v3_localhost",
        cwd=d,
    )
    self_signed(d, "self", "localhost", "v3_self")
    self_signed(d, "stranger", "some other root", "v3_root")
    new_key_and_request(d, "strange", "localhost")
    sign(d, "strange", "stranger", "v3_localhost", 5)
    return Files(
        dir=d,
        root=d / "root.pem",
        chain=served(d, "chain", "leaf", "intermediate"),
        leaf_only=served(d, "leafonly", "leaf"),
        expired=served(d, "expired", "old", "intermediate"),
        other_host=served(d, "otherhost", "other", "intermediate"),
        self_signed=served(d, "selfsigned", "self"),
        untrusted=served(d, "untrusted", "strange", "stranger"),
    )


@contextmanager
def s_server(files: Files, cert: Path) -> Iterator[int]:
    """``openssl s_server -www`` with ``cert`` (its chain in the same file) on a free port."""
    for _ in range(5):
        port = free_port()
        argv = [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(cert),
            "-key",
            str(files.key(cert)),
            "-www",
            "-quiet",
        ]
        if cert.with_suffix(".chain").exists():
            argv += ["-cert_chain", str(cert.with_suffix(".chain"))]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if wait_listening(proc, [port]):
                yield port
                return
        finally:
            proc.kill()
            proc.wait()
    pytest.fail("openssl s_server did not start")


def fetch(files: Files, cert: Path, host: str = "localhost") -> int:
    async def main() -> int:
        with s_server(files, cert) as port:
            async with Client(ca=files.root, timeout=5) as client:
                response = await client.get(f"https://{host}:{port}/")
                return response.status

    return asyncio.run(main())


def refused(files: Files, cert: Path) -> CertificateVerifyError:
    with pytest.raises(CertificateVerifyError) as info:
        fetch(files, cert)
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert info.value.host == "localhost"
    return info.value


def test_openssl_valid_chain_is_accepted(files: Files) -> None:
    """The control: the same CA and intermediate, served whole, verify."""
    assert fetch(files, files.chain) == 200
    assert fetch(files, files.chain, host="127.0.0.1") == 200


def test_openssl_expired_certificate(files: Files) -> None:
    error = refused(files, files.expired)
    assert error.reason == "certificate has expired"
    assert "renew" in error.hint


def test_openssl_wrong_host(files: Files) -> None:
    error = refused(files, files.other_host)
    assert "Hostname mismatch" in error.reason
    assert error.hint.startswith("the server's certificate is for other.test, not localhost")


def test_openssl_self_signed(files: Files) -> None:
    error = refused(files, files.self_signed)
    assert error.reason == "self-signed certificate"
    assert "ca=" in error.hint


def test_openssl_untrusted_ca(files: Files) -> None:
    error = refused(files, files.untrusted)
    assert error.reason == "self-signed certificate in certificate chain"
    assert error.hint.startswith("issuer not trusted")
    assert "ca=" in error.hint


def test_openssl_chain_missing_intermediate(files: Files) -> None:
    error = refused(files, files.leaf_only)
    assert error.reason == "unable to get local issuer certificate"
    assert "intermediate" in error.hint
