"""Revocation end to end: ``certs revoke`` and ``certs crl`` read by openssl, the server
refusing revoked client certificates (and re-reading the CRL), the client refusing a revoked
server certificate; and the client refusing a certificate that names its host only in the CN.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from framework import Client, pki
from framework.cli import main
from framework.errors import CertificateError, CertificateVerifyError
from framework.tls import CertificateStore, client_context
from tests.conftest import require_tool
from tests.e2e.tls_helpers import TIMEOUT, get, serving

HOSTS = ["localhost", "127.0.0.1"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("openssl"), *args], capture_output=True, text=True, timeout=TIMEOUT
    )


def make_ca(base: Path) -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create(base / "ca", name="revocation test CA")


def test_certs_revoke_and_crl_are_read_by_openssl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "bad.pem", tmp_path / "bad.key")
    ca.issue(HOSTS).write(tmp_path / "good.pem", tmp_path / "good.key")
    bad = pki.load_certificates(tmp_path / "bad.pem")[0]
    shown = cli(capsys, "certs", "show", str(tmp_path / "bad.pem"))
    serial = re.search(r"serial:\s+([0-9A-F]+)", shown)
    assert serial is not None
    assert int(serial.group(1), 16) == bad.serial_number

    out = cli(capsys, "certs", "revoke", serial.group(1), "--ca", str(ca.directory))
    assert f"revoked serial {bad.serial_number:X}" in out
    again = cli(capsys, "certs", "revoke", str(tmp_path / "bad.pem"), "--ca", str(ca.directory))
    assert "revoked already" in again
    crl_path = tmp_path / "crl.pem"
    out = cli(capsys, "certs", "crl", "--ca", str(ca.directory), "--out", str(crl_path))
    assert "1 revoked" in out

    text = openssl(
        "crl", "-in", str(crl_path), "-CAfile", str(ca.directory / "ca.pem"), "-noout", "-text"
    )
    assert text.returncode == 0, text.stderr
    assert "verify OK" in text.stderr + text.stdout
    assert "Next Update:" in text.stdout
    # openssl pads the hex to whole bytes: compare the numbers.
    listed = [int(h, 16) for h in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text.stdout)]
    assert listed == [bad.serial_number], text.stdout
    assert "X509v3 CRL Number" in text.stdout

    def verify(cert: str) -> subprocess.CompletedProcess[str]:
        return openssl(
            "verify", "-crl_check", "-CAfile", str(ca.directory / "ca.pem"),
            "-CRLfile", str(crl_path), str(tmp_path / cert),
        )  # fmt: skip

    refused = verify("bad.pem")
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = verify("good.pem")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr

    # A second CRL has a higher number (RFC 5280 section 5.2.3).
    cli(capsys, "certs", "crl", "--ca", str(ca.directory), "--out", str(crl_path))
    number = x509.load_pem_x509_crl(crl_path.read_bytes()).extensions.get_extension_for_class(
        x509.CRLNumber
    )
    assert number.value.crl_number == 2


def test_certs_revoke_refuses_a_serial_the_ca_did_not_issue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = make_ca(tmp_path)
    assert main(["certs", "revoke", "ABCDEF", "--ca", str(ca.directory)]) == 2
    assert "was not issued by this CA" in capsys.readouterr().err
    assert main(["certs", "revoke", "not-hex", "--ca", str(ca.directory)]) == 2
    assert "neither a hex serial" in capsys.readouterr().err


def test_a_crl_file_that_is_not_a_crl_is_refused_in_one_line(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "s.pem", tmp_path / "s.key")
    with pytest.raises(CertificateError, match="cannot load CRL .*no PEM CRL"):
        CertificateStore(
            tmp_path / "s.pem", tmp_path / "s.key",
            client_ca=ca.directory / "ca.pem", client_crl=tmp_path / "s.pem",
        )  # fmt: skip


# --- mutual TLS ---------------------------------------------------------------------------


def served(port: int, ctx: ssl.SSLContext) -> bool:
    """True when a GET with ``ctx`` is answered 200; a refused client certificate shows (in
    TLS 1.3, after the client's side of the handshake is done) as an error or a closed
    connection."""
    try:
        return get(port, ctx).data.startswith(b"HTTP/1.1 200 ")
    except (ssl.SSLError, ConnectionError):
        return False


def _write_crl(ca: pki.CertificateAuthority, path: Path) -> None:
    crl = pki.make_crl(ca)
    pki.write_file(path, crl.public_bytes(serialization.Encoding.PEM), force=True)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_server_refuses_a_revoked_client_certificate_and_rereads_the_crl(
    tmp_path: Path, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "s.pem", tmp_path / "s.key")
    alice = ca.issue(["alice"], client=True)
    alice.write(tmp_path / "alice.pem", tmp_path / "alice.key")
    bob = ca.issue(["bob"], client=True)
    bob.write(tmp_path / "bob.pem", tmp_path / "bob.key")
    pki.revoke(ca, alice.certificate.serial_number)
    crl = tmp_path / "crl.pem"
    _write_crl(ca, crl)

    def as_(name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(ca.directory / "ca.pem"))
        ctx.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
        return ctx

    def refused(name: str) -> bool:
        return not served(port, as_(name))

    store = CertificateStore(
        tmp_path / "s.pem", tmp_path / "s.key", client_ca=ca.directory / "ca.pem", client_crl=crl
    )
    with caplog.at_level(logging.INFO), serving(store, loop=loop) as server:
        port = server.port
        assert not refused("bob")
        assert refused("alice")
        assert any("certificate revoked" in r.getMessage() for r in caplog.records)
        # Bob's access is taken away: the CRL file is replaced; new handshakes see it.
        pki.revoke(ca, bob.certificate.serial_number)
        _write_crl(ca, crl)
        deadline = time.monotonic() + 5.0
        for _ in range(500):
            if refused("bob") or time.monotonic() > deadline:
                break
        assert refused("bob")
        assert any("client CRL reloaded" in r.getMessage() for r in caplog.records)


def test_reload_rereads_the_crl(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "s.pem", tmp_path / "s.key")
    carol = ca.issue(["carol"], client=True)
    carol.write(tmp_path / "carol.pem", tmp_path / "carol.key")
    crl = tmp_path / "crl.pem"
    _write_crl(ca, crl)
    ctx = ssl.create_default_context(cafile=str(ca.directory / "ca.pem"))
    ctx.load_cert_chain(tmp_path / "carol.pem", tmp_path / "carol.key")
    store = CertificateStore(
        tmp_path / "s.pem", tmp_path / "s.key", client_ca=ca.directory / "ca.pem", client_crl=crl
    )
    with serving(store) as server:
        assert served(server.port, ctx)
        pki.revoke(ca, carol.certificate.serial_number)
        _write_crl(ca, crl)
        store.reload()  # what SIGHUP does
        assert not served(server.port, ctx)


# --- the client ---------------------------------------------------------------------------


async def _client_get(port: int, **options: object) -> int:
    async with Client(**options) as client:  # type: ignore[arg-type]
        response = await client.get(f"https://localhost:{port}/")
        await response.aread()
        return response.status


def test_client_refuses_a_revoked_server_certificate(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    issued = ca.issue(HOSTS)
    issued.write(tmp_path / "s.pem", tmp_path / "s.key")
    crl = tmp_path / "crl.pem"
    _write_crl(ca, crl)
    ca_file = ca.directory / "ca.pem"
    with serving(CertificateStore(tmp_path / "s.pem", tmp_path / "s.key")) as server:
        assert asyncio.run(_client_get(server.port, ca=ca_file, crl=crl)) == 200
        pki.revoke(ca, issued.certificate.serial_number)
        _write_crl(ca, crl)
        # A CRL put inside the ca= file is not used: only crl= is.
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(ca_file.read_bytes() + crl.read_bytes())
        assert asyncio.run(_client_get(server.port, ca=bundle)) == 200
        with pytest.raises(CertificateVerifyError) as caught:
            asyncio.run(_client_get(server.port, ca=ca_file, crl=crl))
    message = str(caught.value)
    assert "\n" not in message
    assert "revoked" in message
    assert "crl=" in message


def test_client_context_with_an_expired_crl_refuses(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "s.pem", tmp_path / "s.key")
    crl = tmp_path / "old.pem"
    old = pki.make_crl(ca, days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    crl.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    ctx = client_context(ca.directory / "ca.pem", crl=crl)
    with serving(CertificateStore(tmp_path / "s.pem", tmp_path / "s.key")) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="CRL has expired"):
            get(server.port, ctx)


def _cn_only_certificate(ca: pki.CertificateAuthority, base: Path) -> tuple[Path, Path]:
    """A server certificate naming ``localhost`` in its subject CN alone: no subjectAltName."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_cert = ca.certificate
    ca_key = ca._key
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = base / "cn-only.pem", base / "cn-only.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_client_refuses_a_certificate_naming_the_host_only_in_the_cn(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    cert, key = _cn_only_certificate(ca, tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    with serving(server_ctx) as server:
        # The stdlib's default takes the CN: the control that the certificate is otherwise good.
        lenient = ssl.create_default_context(cafile=str(ca.directory / "ca.pem"))
        lenient.hostname_checks_common_name = True
        assert get(server.port, lenient).data.startswith(b"HTTP/1.1 200 ")
        with pytest.raises(CertificateVerifyError) as caught:
            asyncio.run(_client_get(server.port, ca=ca.directory / "ca.pem"))
    assert "subjectAltName" in str(caught.value)
    assert "CN alone" in str(caught.value)


def test_serve_client_crl_refuses_after_sighup(tmp_path: Path) -> None:
    import signal

    from tests.e2e.test_mtls import serving as serving_cli

    ca = make_ca(tmp_path)
    ca.issue(HOSTS).write(tmp_path / "s.pem", tmp_path / "s.key")
    dave = ca.issue(["dave"], client=True)
    dave.write(tmp_path / "dave.pem", tmp_path / "dave.key")
    crl = tmp_path / "crl.pem"
    _write_crl(ca, crl)
    ctx = ssl.create_default_context(cafile=str(ca.directory / "ca.pem"))
    ctx.load_cert_chain(tmp_path / "dave.pem", tmp_path / "dave.key")
    with serving_cli(
        "examples.hello:app",
        "--certfile", str(tmp_path / "s.pem"),
        "--keyfile", str(tmp_path / "s.key"),
        "--client-ca", str(ca.directory / "ca.pem"),
        "--client-crl", str(crl),
        home=tmp_path / "home",
    ) as process:  # fmt: skip
        assert served(process.port, ctx)
        pki.revoke(ca, dave.certificate.serial_number)
        _write_crl(ca, crl)
        mark = process.mark()
        process.process.send_signal(signal.SIGHUP)
        process.wait_for(re.compile(r"INFO framework\.tls: certificate reloaded"), after=mark)
        # The reload happened on the server's loop: poll new connections until they show it.
        deadline = time.monotonic() + 5.0
        for _ in range(500):
            if not served(process.port, ctx) or time.monotonic() > deadline:
                break
        assert not served(process.port, ctx)
        process.wait_for(
            re.compile(r"WARNING .*client certificate verify failed: certificate revoked")
        )
