"""Our certificates judged by other implementations: OpenSSL's verifier, curl and real handshakes.

The TLS server here is the standard library's ``ssl`` on a plain socket in a thread, so these
tests depend on nothing of the package but ``pki``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from framework import pki
from framework.errors import PolicyError
from tests.conftest import require_tool

pytestmark = pytest.mark.tool


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("openssl"), *map(str, args)], capture_output=True, text=True, timeout=30
    )


def _openssl_verify(
    ca_file: Path, leaf: Path, untrusted: Path | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    args: list[str | Path] = ["verify", "-x509_strict", *extra, "-CAfile", ca_file]
    if untrusted is not None:
        args += ["-untrusted", untrusted]
    return _openssl(*args, leaf)


def _split_chain(issued: pki.IssuedCertificate, tmp_path: Path) -> tuple[Path, Path | None]:
    """Write the leaf and its intermediates to separate files, as ``openssl verify`` wants."""
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki.certificates_pem(issued.chain[:1]))
    if len(issued.chain) == 1:
        return leaf, None
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_bytes(pki.certificates_pem(issued.chain[1:]))
    return leaf, untrusted


@contextlib.contextmanager
def _tls_server(
    cert: Path, key: Path, client_ca: Path | None = None
) -> Iterator[tuple[int, list[BaseException]]]:
    """Serve ``ok`` (and the client's CN, with mTLS) over TLS on 127.0.0.1; yield the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        context.load_verify_locations(client_ca)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # how often the accept loop looks at ``stop``
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = tls.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    peer = tls.getpeercert() or {}
                    names = [pair for rdn in peer.get("subject", ()) for pair in rdn]
                    cn = next((v for k, v in names if k == "commonName"), "")
                    body = f"ok {cn}".strip().encode()
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(body), body)
                    )
            except (OSError, ssl.SSLError) as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], errors
    finally:
        stop.set()
        thread.join()
        listener.close()


def _curl(
    port: int, ca: Path, host: str = "x.test", *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            require_tool("curl"), "--silent", "--show-error", "--max-time", "10",
            "--cacert", str(ca), "--resolve", f"{host}:{port}:127.0.0.1", *extra,
            f"https://{host}:{port}/",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def _python_client(port: int, ca: Path, host: str = "x.test") -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(4096):
                response += chunk
    return response


def _serve_and_check(issued: pki.IssuedCertificate, ca_file: Path, tmp_path: Path) -> None:
    issued.write(tmp_path / "srv.pem", tmp_path / "srv.key")
    with _tls_server(tmp_path / "srv.pem", tmp_path / "srv.key") as (port, errors):
        result = _curl(port, ca_file)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ok"
        assert _python_client(port, ca_file).endswith(b"\r\n\r\nok")
        for host in ("localhost", "127.0.0.1"):
            assert _python_client(port, ca_file, host).endswith(b"ok")
    assert errors == []


@pytest.fixture
def ca(tmp_path: Path) -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create(tmp_path / "ca")


HOSTS = ["x.test", "localhost", "127.0.0.1", "::1"]


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_root_leaf_verifies_with_openssl_curl_and_python(
    ca: pki.CertificateAuthority, tmp_path: Path, key_type: pki.KeyType
) -> None:
    issued = ca.issue(HOSTS, key_type=key_type)
    leaf, untrusted = _split_chain(issued, tmp_path)
    result = _openssl_verify(ca.trust_path, leaf, untrusted, "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr
    _serve_and_check(issued, ca.trust_path, tmp_path)


def test_intermediate_leaf_verifies_with_openssl_curl_and_python(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    sub = pki.CertificateAuthority.create(tmp_path / "sub", parent=ca, key_type="ec-p384")
    issued = sub.issue(HOSTS)
    leaf, untrusted = _split_chain(issued, tmp_path)
    result = _openssl_verify(sub.trust_path, leaf, untrusted, "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr
    assert _openssl_verify(sub.trust_path, leaf).returncode != 0  # the intermediate is needed
    _serve_and_check(issued, sub.trust_path, tmp_path)


def test_client_certificate_verifies_and_authenticates(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    client = ca.issue(["alice.test"], client=True)
    leaf, _ = _split_chain(client, tmp_path)
    assert _openssl_verify(ca.trust_path, leaf, None, "-purpose", "sslclient").returncode == 0
    assert _openssl_verify(ca.trust_path, leaf, None, "-purpose", "sslserver").returncode != 0
    client.write(tmp_path / "alice.pem", tmp_path / "alice.key")
    ca.issue(HOSTS).write(tmp_path / "srv.pem", tmp_path / "srv.key")
    with _tls_server(tmp_path / "srv.pem", tmp_path / "srv.key", ca.trust_path) as (port, _):
        cert_args = ("--cert", str(tmp_path / "alice.pem"), "--key", str(tmp_path / "alice.key"))
        result = _curl(port, ca.trust_path, "x.test", *cert_args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ok alice.test"
        assert _curl(port, ca.trust_path).returncode != 0  # no client certificate: refused


def test_openssl_request_is_signed_and_serves_curl(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    result = _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", tmp_path / "srv.key", "-out", tmp_path / "srv.csr",
        "-subj", "/CN=x.test", "-addext", "subjectAltName=DNS:x.test",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    chain = ca.sign(pki.load_signing_request(tmp_path / "srv.csr"))
    (tmp_path / "srv.pem").write_bytes(pki.certificates_pem(chain))
    assert _openssl_verify(ca.trust_path, tmp_path / "srv.pem").returncode == 0
    with _tls_server(tmp_path / "srv.pem", tmp_path / "srv.key") as (port, errors):
        result = _curl(port, ca.trust_path)
        assert (result.returncode, result.stdout) == (0, "ok"), result.stderr
    assert errors == []


def test_our_request_passes_openssl_req_verify(tmp_path: Path) -> None:
    csr = pki.make_signing_request(pki.generate_private_key("ec-p384"), ["x.test", "10.0.0.1"])
    (tmp_path / "x.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = _openssl("req", "-in", tmp_path / "x.csr", "-verify", "-noout", "-text")
    assert result.returncode == 0, result.stderr
    assert "DNS:x.test, IP Address:10.0.0.1" in result.stdout


def test_openssl_ca_request_is_refused(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    result = _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", tmp_path / "k", "-out", tmp_path / "ca.csr", "-subj", "/CN=sub",
        "-addext", "basicConstraints=critical,CA:TRUE",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with pytest.raises(PolicyError, match="asks to be a CA"):
        ca.sign(pki.load_signing_request(tmp_path / "ca.csr"))


def test_dev_ca_verifies_and_openssl_enforces_its_name_constraints(tmp_path: Path) -> None:
    dev = pki.dev_certificate(tmp_path)
    result = _openssl_verify(dev.ca_cert_path, dev.cert_path, None, "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr
    # A certificate for another site, made with the dev CA's key by going around its policy:
    # clients that trust the dev CA must still refuse it.
    ca = pki.CertificateAuthority.load(dev.ca_cert_path.parent)
    key = pki.load_private_key(dev.ca_cert_path.parent / "ca.key")
    for name in (x509.DNSName("example.com"), x509.IPAddress(ipaddress.ip_address("8.8.8.8"))):
        leaf = _forged(ca.certificate, key, name)
        (tmp_path / "forged.pem").write_bytes(pki.certificates_pem([leaf]))
        result = _openssl_verify(dev.ca_cert_path, tmp_path / "forged.pem")
        assert result.returncode != 0
        assert "subtree violation" in result.stdout + result.stderr
    with _tls_server(dev.cert_path, dev.key_path) as (port, errors):
        assert _python_client(port, dev.ca_cert_path, "localhost").endswith(b"ok")
        result = _curl(port, dev.ca_cert_path, "localhost")
        assert (result.returncode, result.stdout) == (0, "ok"), result.stderr
    assert errors == []


def _forged(
    ca_cert: x509.Certificate, ca_key: pki.PrivateKey, name: x509.GeneralName
) -> x509.Certificate:
    key = pki.generate_private_key()
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([name]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def test_pkcs12_is_read_by_openssl(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    sub = pki.CertificateAuthority.create(tmp_path / "sub", parent=ca)
    (tmp_path / "x.p12").write_bytes(pki.to_pkcs12(sub.issue(["x.test"]), None, b"s3cret"))
    result = _openssl(
        "pkcs12", "-in", tmp_path / "x.p12", "-passin", "pass:s3cret", "-nodes", "-info"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("BEGIN CERTIFICATE") == 2
    assert "BEGIN PRIVATE KEY" in result.stdout
