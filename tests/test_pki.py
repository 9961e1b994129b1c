"""Keys, signing requests, the CA's policy, verification and the development CA, in process.

Every certificate is checked by cryptography's own verifier (an independent implementation of
RFC 5280 path validation); OpenSSL, curl and real handshakes are in tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from framework import limits, pki
from framework.errors import CertificateError, PKIError, PolicyError, SigningRequestError
from framework.pki.devca import DEV_HOSTS

NOW = dt.datetime.now(dt.UTC)
E = TypeVar("E", bound=x509.ExtensionType)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def _cryptography_verify(chain: list[x509.Certificate], root: x509.Certificate, host: str) -> None:
    """Verify with cryptography's verifier directly, without our pre-checks."""
    name: verification.Subject
    try:
        name = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        name = x509.DNSName(host)
    builder = verification.PolicyBuilder().store(verification.Store([root]))
    builder.build_server_verifier(name).verify(chain[0], chain[1:])


def _raw_leaf(
    ca: pki.CertificateAuthority,
    names: list[x509.GeneralName],
    *,
    eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.Certificate:
    """A well-formed leaf signed with the CA's key, bypassing the CA's policy checks."""
    ca_key = pki.load_private_key(ca.directory / "ca.key")
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(names[0].value))]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


@pytest.fixture
def ca(tmp_path: Path) -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create(tmp_path / "ca")


@pytest.fixture
def sub_ca(tmp_path: Path, ca: pki.CertificateAuthority) -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create(tmp_path / "sub", parent=ca)


# --- keys and files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "kind", "size"),
    [
        ("ec-p256", ec.EllipticCurvePrivateKey, 256),
        ("ec-p384", ec.EllipticCurvePrivateKey, 384),
        ("rsa-2048", rsa.RSAPrivateKey, 2048),
    ],
)
def test_generate_private_key_makes_each_type(key_type: pki.KeyType, kind: type, size: int) -> None:
    key = pki.generate_private_key(key_type)
    assert isinstance(key, kind)
    assert key.key_size == size
    assert pki.describe_key(key) == key_type
    assert pki.describe_key(key.public_key()) == key_type


def test_generate_private_key_refuses_unknown_type() -> None:
    with pytest.raises(ValueError, match="ed25519.*ec-p256"):
        pki.generate_private_key("ed25519")  # type: ignore[arg-type]


def test_write_private_key_is_0600_and_pkcs8(tmp_path: Path) -> None:
    key = pki.generate_private_key()
    path = pki.write_private_key(tmp_path / "k.pem", key)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.load_private_key(path).public_key() == key.public_key()


def test_write_private_key_refuses_existing_file_without_force(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"keep me")
    with pytest.raises(PKIError, match="already exists; pass --force"):
        pki.write_private_key(path, pki.generate_private_key())
    assert path.read_bytes() == b"keep me"


def test_write_private_key_force_replaces_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    pki.write_private_key(path, pki.generate_private_key(), force=True)
    assert _mode(path) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["k.pem"]  # no temporary file left


def test_write_private_key_refuses_to_follow_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "k.pem").symlink_to(target)
    with pytest.raises(PKIError, match="already exists"):
        pki.write_private_key(tmp_path / "k.pem", pki.generate_private_key())
    assert not target.exists()


def test_write_private_key_does_not_rely_on_umask(tmp_path: Path) -> None:
    # With umask 0 a file created 0644 and chmod'ed later would show 0644 first; the files
    # must be 0600 (keys) and the CA directory 0700 whatever the umask.
    code = (
        "import os, sys; os.umask(0)\n"
        "from framework import pki\n"
        "d = sys.argv[1]\n"
        "pki.write_private_key(d + '/k.pem', pki.generate_private_key())\n"
        "pki.write_private_key(d + '/k.pem', pki.generate_private_key(), force=True)\n"
        "ca = pki.CertificateAuthority.create(d + '/ca')\n"
        "ca.issue(['x.test']).write(d + '/c.pem', d + '/c.key')\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=_ROOT)
    assert _mode(tmp_path / "k.pem") == 0o600
    assert _mode(tmp_path / "ca") == 0o700
    assert _mode(tmp_path / "ca" / "ca.key") == 0o600
    assert _mode(tmp_path / "c.key") == 0o600
    assert _mode(tmp_path / "c.pem") == 0o644


_ROOT = Path(__file__).resolve().parent.parent


def test_write_file_refuses_existing_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "c.pem"
    pki.write_file(path, b"one")
    with pytest.raises(PKIError, match=r"c\.pem already exists; pass --force"):
        pki.write_file(path, b"two")
    pki.write_file(path, b"three", force=True)
    assert path.read_bytes() == b"three"
    assert _mode(path) == 0o644


def test_load_private_key_explains_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="cannot read key file"):
        pki.load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("not a key\n")
    with pytest.raises(CertificateError, match="junk.key is not a PEM private key"):
        pki.load_private_key(tmp_path / "junk.key")
    encrypted = pki.generate_private_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    (tmp_path / "enc.key").write_bytes(encrypted)
    with pytest.raises(CertificateError, match="encrypted key; decrypt it"):
        pki.load_private_key(tmp_path / "enc.key")


def test_load_certificates_reads_chain_and_refuses_empty(
    tmp_path: Path, sub_ca: pki.CertificateAuthority
) -> None:
    issued = sub_ca.issue(["x.test"])
    (tmp_path / "chain.pem").write_bytes(issued.cert_pem)
    assert pki.load_certificates(tmp_path / "chain.pem") == issued.chain
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(CertificateError, match="holds no certificate"):
        pki.load_certificates(tmp_path / "empty.pem")


# --- names and signing requests -------------------------------------------------------------


def test_parse_hosts_accepts_names_and_addresses() -> None:
    names = pki.parse_hosts(
        ["Example.TEST.", "*.example.test", "127.0.0.1", "[::1]", "bücher.test", "example.test"]
    )
    assert names == [
        x509.DNSName("example.test"),
        x509.DNSName("*.example.test"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("xn--bcher-kva.test"),
    ]


@pytest.mark.parametrize("host", ["", "a b", "under_score.test", "-x.test", "a.*.test", "x" * 64])
def test_parse_hosts_names_the_bad_host(host: str) -> None:
    with pytest.raises(ValueError, match="is not a DNS name or IP address"):
        pki.parse_hosts([host])


def test_parse_hosts_refuses_no_hosts() -> None:
    with pytest.raises(ValueError, match="no host names given"):
        pki.parse_hosts([])


def test_make_signing_request_carries_names_and_valid_signature() -> None:
    key = pki.generate_private_key()
    csr = pki.make_signing_request(key, ["x.test", "127.0.0.1"])
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=x.test"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == ["x.test", "127.0.0.1"]
    assert csr.public_key() == key.public_key()


def test_make_signing_request_leaves_out_a_cn_too_long() -> None:
    host = ".".join(["a" * 30] * 3)  # 92 characters: a fine DNS name, too long for a CN
    csr = pki.make_signing_request(pki.generate_private_key(), [host])
    assert csr.subject == x509.Name([])


def test_load_signing_request_refuses_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.csr").write_text("nope")
    with pytest.raises(SigningRequestError, match="is not a certificate signing request"):
        pki.load_signing_request(tmp_path / "x.csr")


# --- the CA ---------------------------------------------------------------------------------


def test_ca_create_writes_its_directory_privately(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority.create(tmp_path / "pki", name="Test Root")
    assert sorted(p.name for p in ca.directory.iterdir()) == ["ca.key", "ca.pem"]
    assert _mode(ca.directory) == 0o700
    assert _mode(ca.directory / "ca.key") == 0o600
    assert ca.trust_path == ca.directory / "ca.pem"
    assert ca.certificate.subject.rfc4514_string() == "CN=Test Root"
    assert "Test Root" in repr(ca)
    assert "root" in repr(ca)


def test_ca_create_root_extensions(ca: pki.CertificateAuthority) -> None:
    cert = ca.certificate
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length is None
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    assert not ku.value.digital_signature
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=limits.ROOT_CA_DAYS, seconds=limits.BACKDATE_SECONDS)


def test_ca_create_refuses_existing_ca_without_force(ca: pki.CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="already holds a CA; pass --force"):
        pki.CertificateAuthority.create(ca.directory)
    again = pki.CertificateAuthority.create(ca.directory, force=True)
    assert again.certificate != ca.certificate
    assert _mode(ca.directory / "ca.key") == 0o600


def test_ca_create_refuses_directory_with_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.pem").write_text("someone else's")
    with pytest.raises(PKIError, match="already holds a CA"):
        pki.CertificateAuthority.create(tmp_path / "ca")
    assert not (tmp_path / "ca" / "ca.key").exists()


def test_ca_load_round_trips(sub_ca: pki.CertificateAuthority) -> None:
    loaded = pki.CertificateAuthority.load(sub_ca.directory)
    assert loaded.certificate == sub_ca.certificate
    assert loaded.chain == sub_ca.chain == []
    assert loaded.root == sub_ca.root
    assert loaded.is_intermediate


def test_ca_load_explains_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no CA in .*framework certs ca --dir"):
        pki.CertificateAuthority.load(tmp_path / "nothing")


def test_ca_sign_decides_every_extension(ca: pki.CertificateAuthority) -> None:
    key = pki.generate_private_key()
    # A request asking for more than it should get: CA key usages and code signing.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("x.test")]), critical=False)
        .add_extension(
            x509.KeyUsage(True, True, True, True, True, True, True, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .sign(key, hashes.SHA256())
    )
    [leaf] = ca.sign(csr)
    assert leaf.subject.rfc4514_string() == "CN=x.test"
    assert leaf.issuer == ca.certificate.subject
    bc = _ext(leaf, x509.BasicConstraints)
    assert bc.critical
    assert not bc.value.ca
    ku = _ext(leaf, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not (ku.value.key_cert_sign)
    assert not (ku.value.key_encipherment)
    assert not ku.value.crl_sign
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not _ext(leaf, x509.SubjectAlternativeName).critical
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    )
    assert _ext(leaf, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    )
    assert {e.oid for e in leaf.extensions} == {
        x509.BasicConstraints.oid, x509.KeyUsage.oid, x509.ExtendedKeyUsage.oid,
        x509.SubjectAlternativeName.oid, x509.SubjectKeyIdentifier.oid,
        x509.AuthorityKeyIdentifier.oid,
    }  # fmt: skip
    assert leaf.serial_number.bit_length() > 64
    backdate = dt.datetime.now(dt.UTC) - leaf.not_valid_before_utc
    assert dt.timedelta(seconds=limits.BACKDATE_SECONDS - 60) < backdate
    serials = (ca.directory / "serials.txt").read_text().split()
    assert serials == [f"{leaf.serial_number:x}"]


def test_ca_sign_rsa_leaf_may_encipher_keys(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["x.test"], key_type="rsa-2048")
    ku = _ext(issued.certificate, x509.KeyUsage).value
    assert ku.digital_signature
    assert ku.key_encipherment
    _cryptography_verify(issued.chain, ca.certificate, "x.test")


def test_ca_sign_takes_cn_when_request_has_no_names(ca: pki.CertificateAuthority) -> None:
    key = pki.generate_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.test")]))
        .sign(key, hashes.SHA256())
    )
    [leaf] = ca.sign(csr)
    assert [str(n.value) for n in _ext(leaf, x509.SubjectAlternativeName).value] == ["old.test"]


def test_ca_sign_refuses_request_naming_nothing(ca: pki.CertificateAuthority) -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(pki.generate_private_key(), hashes.SHA256())
    )
    with pytest.raises(SigningRequestError, match="names no host; make it with --host"):
        ca.sign(csr)


def test_ca_sign_refuses_tampered_signature(ca: pki.CertificateAuthority) -> None:
    der = bytearray(
        pki.make_signing_request(pki.generate_private_key(), ["x.test"]).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0x01  # a bit of the signature
    csr = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(SigningRequestError, match="signature does not verify"):
        ca.sign(csr)


def test_ca_sign_refuses_ca_request(ca: pki.CertificateAuthority) -> None:
    key = pki.generate_private_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("x.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(PolicyError, match=r"asks to be a CA \(basicConstraints CA:TRUE\)"):
        ca.sign(csr)


def test_ca_sign_refuses_name_outside_policy_naming_it(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority.create(
        tmp_path / "ca", permitted_dns=["example.test", ".internal"], permitted_ips=["10.0.0.0/8"]
    )
    assert (tmp_path / "ca" / "policy.json").exists()
    ca.issue(["example.test", "www.example.test", "db.internal", "10.1.2.3"])
    for refused in ["other.test", "internal", "notexample.test", "192.168.0.1", "::1"]:
        csr = pki.make_signing_request(pki.generate_private_key(), ["example.test", refused])
        with pytest.raises(PolicyError, match=f"refuses {refused}: it may only certify"):
            ca.sign(csr)
    loaded = pki.CertificateAuthority.load(tmp_path / "ca")
    with pytest.raises(PolicyError, match="refuses other.test"):
        loaded.issue(["other.test"])


def test_ca_with_policy_carries_name_constraints_clients_enforce(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority.create(tmp_path / "ca", permitted_dns=[".test"])
    nc = _ext(ca.certificate, x509.NameConstraints)
    assert nc.critical
    assert nc.value.permitted_subtrees == [x509.DNSName("test")]
    # No IP is permitted, so every IP is excluded (otherwise the IP form is unconstrained).
    assert x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")) in (nc.value.excluded_subtrees or [])
    _cryptography_verify(ca.issue(["a.test"]).chain, ca.certificate, "a.test")
    outside = _raw_leaf(ca, [x509.DNSName("example.com")])
    with pytest.raises(verification.VerificationError, match="name constraint"):
        _cryptography_verify([outside], ca.certificate, "example.com")
    with pytest.raises(CertificateError, match="certificate rejected: .*name constraint"):
        pki.verify_certificate([outside], [ca.certificate], host="example.com")


def test_ca_sign_refuses_too_many_days_and_warns_past_browser_limit(
    ca: pki.CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(PolicyError, match=f"more than this CA signs \\({limits.LEAF_DAYS_MAX}\\)"):
        ca.issue(["x.test"], days=limits.LEAF_DAYS_MAX + 1)
    with caplog.at_level(logging.WARNING, logger="framework.pki"):
        issued = ca.issue(["x.test"], days=limits.LEAF_DAYS_WARN + 1)
    assert "more than browsers accept" in caplog.text
    assert issued.certificate.not_valid_after_utc > NOW + dt.timedelta(days=limits.LEAF_DAYS_WARN)
    with pytest.raises(ValueError, match="days must be at least 1"):
        ca.issue(["x.test"], days=0)


def test_ca_sign_refuses_weak_rsa_key(ca: pki.CertificateAuthority) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = pki.make_signing_request(weak, ["x.test"])
    with pytest.raises(PolicyError, match="RSA key of 1024 bits; use 2048"):
        ca.sign(csr)


def test_ca_sign_refuses_key_types_clients_may_not_take(ca: pki.CertificateAuthority) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x.test")]))
        .sign(key, None)
    )
    with pytest.raises(PolicyError, match="ed25519 keys are not signed; use ec-p256"):
        ca.sign(csr)


def test_ca_sign_ends_leaf_with_its_ca(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = pki.CertificateAuthority.create(tmp_path / "ca", days=30)
    with caplog.at_level(logging.WARNING, logger="framework.pki"):
        issued = ca.issue(["x.test"], days=90)
    assert issued.certificate.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert "the CA expires first" in caplog.text


def test_ca_intermediate_chain_and_path_length(
    ca: pki.CertificateAuthority, sub_ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    assert sub_ca.certificate.subject.rfc4514_string() == "CN=framework CA intermediate"
    assert _ext(sub_ca.certificate, x509.BasicConstraints).value.path_length == 0
    assert _ext(sub_ca.certificate, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    )
    assert (sub_ca.directory / "root.pem").read_bytes() == ca.cert_pem
    assert sub_ca.trust_path == sub_ca.directory / "root.pem"
    issued = sub_ca.issue(["x.test"])
    assert issued.chain == [issued.certificate, sub_ca.certificate]
    _cryptography_verify(issued.chain, ca.certificate, "x.test")
    pki.verify_certificate(issued.chain, [ca.certificate], host="x.test")
    # The root recorded the intermediate it signed.
    assert f"{sub_ca.certificate.serial_number:x}" in (ca.directory / "serials.txt").read_text()
    with pytest.raises(PolicyError, match="may not sign other CAs"):
        pki.CertificateAuthority.create(tmp_path / "subsub", parent=sub_ca)


def test_ca_intermediate_needs_its_own_name(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="taken by its parent"):
        pki.CertificateAuthority.create(tmp_path / "sub", parent=ca, name="framework CA")


def test_ca_intermediate_narrows_but_never_widens_policy(tmp_path: Path) -> None:
    root = pki.CertificateAuthority.create(
        tmp_path / "root", permitted_dns=[".test"], permitted_ips=["10.0.0.0/8"]
    )
    inherited = pki.CertificateAuthority.create(tmp_path / "a", parent=root)
    assert inherited.permitted_dns == (".test",)
    assert pki.CertificateAuthority.load(tmp_path / "a").permitted_ips == (
        ipaddress.ip_network("10.0.0.0/8"),
    )
    narrow = pki.CertificateAuthority.create(
        tmp_path / "b", parent=root, permitted_dns=["shop.test"], permitted_ips=["10.1.0.0/16"]
    )
    _cryptography_verify(narrow.issue(["api.shop.test"]).chain, root.certificate, "api.shop.test")
    with pytest.raises(PolicyError, match="refuses other.test"):
        narrow.issue(["other.test"])
    with pytest.raises(PolicyError, match="example.com is outside the parent"):
        pki.CertificateAuthority.create(tmp_path / "c", parent=root, permitted_dns=["example.com"])
    with pytest.raises(PolicyError, match="192.168.0.0/16 is outside the parent"):
        pki.CertificateAuthority.create(
            tmp_path / "d", parent=root, permitted_ips=["192.168.0.0/16"]
        )


# --- issuance -------------------------------------------------------------------------------


def test_issue_writes_key_and_chain(sub_ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    issued = sub_ca.issue(["x.test", "127.0.0.1"], key_type="ec-p384")
    assert "x.test, 127.0.0.1" in repr(issued)
    assert "PRIVATE" not in repr(issued)
    issued.write(tmp_path / "c.pem", tmp_path / "c.key")
    assert _mode(tmp_path / "c.key") == 0o600
    assert pki.check_server_files(tmp_path / "c.pem", tmp_path / "c.key") == issued.chain
    assert isinstance(pki.load_private_key(tmp_path / "c.key"), ec.EllipticCurvePrivateKey)


def test_issue_write_refuses_and_writes_neither(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    (tmp_path / "c.pem").write_text("keep")
    with pytest.raises(PKIError, match="c.pem already exists; pass --force"):
        ca.issue(["x.test"]).write(tmp_path / "c.pem", tmp_path / "c.key")
    assert not (tmp_path / "c.key").exists()


def test_issue_client_certificate(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["alice.test"], client=True)
    assert list(_ext(issued.certificate, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    pki.verify_certificate(issued.chain, [ca.certificate], client=True)
    builder = verification.PolicyBuilder().store(verification.Store([ca.certificate]))
    verified = builder.build_client_verifier().verify(issued.certificate, [])
    assert verified.subjects == [x509.DNSName("alice.test")]


# --- verification ---------------------------------------------------------------------------


def test_verify_certificate_accepts_names_and_addresses(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["x.test", "*.x.test", "127.0.0.1", "::1"])
    for host in ["x.test", "a.x.test", "X.TEST", "127.0.0.1", "::1", None]:
        pki.verify_certificate(issued.chain, [ca.certificate], host=host)


def test_verify_certificate_expired(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["x.test"], days=10, now=NOW - dt.timedelta(days=20))
    with pytest.raises(CertificateError, match=r"^certificate expired on 20\d\d-\d\d-\d\d"):
        pki.verify_certificate(issued.chain, [ca.certificate], host="x.test")


def test_verify_certificate_not_yet_valid(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["x.test"], now=NOW + dt.timedelta(days=2))
    with pytest.raises(CertificateError, match="is not valid until"):
        pki.verify_certificate(issued.chain, [ca.certificate], host="x.test")
    pki.verify_certificate(issued.chain, [ca.certificate], now=NOW + dt.timedelta(days=3))


def test_verify_certificate_expired_intermediate(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    sub = pki.CertificateAuthority.create(
        tmp_path / "old", parent=ca, days=5, now=NOW - dt.timedelta(days=10)
    )
    leaf = _raw_leaf(sub, [x509.DNSName("x.test")])  # outlives its CA (nothing forbids it)
    with pytest.raises(CertificateError, match="intermediate 'framework CA intermediate' expired"):
        pki.verify_certificate([leaf, sub.certificate], [ca.certificate])


def test_verify_certificate_wrong_host(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["a.test", "b.test", "*.c.test"])
    for host in ["other.test", "x.y.c.test", "c.test", "127.0.0.1"]:
        with pytest.raises(
            CertificateError, match=f"^certificate is for a.test, b.test, \\*.c.test, not {host}$"
        ):
            pki.verify_certificate(issued.chain, [ca.certificate], host=host)


def test_verify_certificate_untrusted_issuer(ca: pki.CertificateAuthority, tmp_path: Path) -> None:
    other = pki.CertificateAuthority.create(tmp_path / "other", name="Other CA")
    issued = ca.issue(["x.test"])
    with pytest.raises(
        CertificateError, match=r"^issuer not trusted \('x.test' was signed by 'CN=framework CA'"
    ):
        pki.verify_certificate(issued.chain, [other.certificate], host="x.test")


def test_verify_certificate_same_name_other_key_is_untrusted(
    ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    impostor = pki.CertificateAuthority.create(tmp_path / "impostor")  # also "framework CA"
    with pytest.raises(CertificateError, match="issuer not trusted"):
        pki.verify_certificate(impostor.issue(["x.test"]).chain, [ca.certificate])


def test_verify_certificate_missing_intermediate(
    ca: pki.CertificateAuthority, sub_ca: pki.CertificateAuthority
) -> None:
    issued = sub_ca.issue(["x.test"])
    with pytest.raises(CertificateError, match="issuer not trusted .*nor an intermediate"):
        pki.verify_certificate(issued.chain[:1], [ca.certificate], host="x.test")


@pytest.mark.parametrize("client", [False, True])
def test_verify_certificate_wrong_usage(ca: pki.CertificateAuthority, client: bool) -> None:
    issued = ca.issue(["x.test"], client=not client)
    role, eku = ("client", "serverAuth") if client else ("server", "clientAuth")
    with pytest.raises(
        CertificateError,
        match=f"^not for {role} authentication \\(extendedKeyUsage is {eku}\\)$",
    ):
        pki.verify_certificate(issued.chain, [ca.certificate], client=client)


def test_verify_certificate_broken_chain(
    ca: pki.CertificateAuthority, sub_ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    issued = sub_ca.issue(["x.test"])
    stranger = pki.CertificateAuthority.create(tmp_path / "s", name="Stranger").certificate
    with pytest.raises(
        CertificateError,
        match=r"^chain broken: certificate 2 \('Stranger'\) did not issue certificate 1",
    ):
        pki.verify_certificate([issued.certificate, stranger], [ca.certificate])


def test_verify_certificate_refuses_ca_certificate_as_leaf(
    ca: pki.CertificateAuthority, sub_ca: pki.CertificateAuthority
) -> None:
    with pytest.raises(CertificateError, match="no subjectAltName"):
        pki.verify_certificate([sub_ca.certificate], [ca.certificate])


def test_verify_certificate_needs_certificates() -> None:
    with pytest.raises(CertificateError, match="no certificate to verify"):
        pki.verify_certificate([], [])


def test_check_key_matches_refuses_other_key(ca: pki.CertificateAuthority) -> None:
    issued = ca.issue(["x.test"])
    pki.check_key_matches(issued.certificate, issued.private_key)
    with pytest.raises(CertificateError, match="key does not match the certificate for 'x.test'"):
        pki.check_key_matches(issued.certificate, pki.generate_private_key())


def test_check_server_files_explains_each_problem(
    ca: pki.CertificateAuthority, sub_ca: pki.CertificateAuthority, tmp_path: Path
) -> None:
    issued = sub_ca.issue(["x.test"])
    issued.write(tmp_path / "c.pem", tmp_path / "c.key")
    pki.write_private_key(tmp_path / "other.key", pki.generate_private_key())
    with pytest.raises(
        CertificateError, match=r"other.key does not match the first certificate in .*c.pem"
    ):
        pki.check_server_files(tmp_path / "c.pem", tmp_path / "other.key")
    (tmp_path / "reversed.pem").write_bytes(pki.certificates_pem(reversed(issued.chain)))
    with pytest.raises(CertificateError, match="does not match the first certificate"):
        pki.check_server_files(tmp_path / "reversed.pem", tmp_path / "c.key")
    (tmp_path / "wrong.pem").write_bytes(pki.certificates_pem([issued.certificate, ca.certificate]))
    with pytest.raises(
        CertificateError, match=r"wrong.pem: certificate 2 .* did not issue .*order the file"
    ):
        pki.check_server_files(tmp_path / "wrong.pem", tmp_path / "c.key")
    old = ca.issue(["x.test"], days=1, now=NOW - dt.timedelta(days=5))
    old.write(tmp_path / "old.pem", tmp_path / "old.key")
    with pytest.raises(CertificateError, match=r"old.pem expired on .*issue a new one"):
        pki.check_server_files(tmp_path / "old.pem", tmp_path / "old.key")
    # One file holding both, as ssl's load_cert_chain allows.
    (tmp_path / "both.pem").write_bytes(issued.private_key_pem + issued.cert_pem)
    assert pki.check_server_files(tmp_path / "both.pem", tmp_path / "both.pem") == issued.chain


def test_to_pkcs12_round_trips(sub_ca: pki.CertificateAuthority) -> None:
    issued = sub_ca.issue(["x.test"])
    bundle = pki.to_pkcs12(issued, None, b"secret")
    loaded = pkcs12.load_pkcs12(bundle, b"secret")
    assert loaded.key is not None
    assert loaded.key.public_key() == issued.private_key.public_key()
    assert loaded.cert is not None
    assert loaded.cert.certificate == issued.certificate
    assert [c.certificate for c in loaded.additional_certs] == issued.chain[1:]
    assert pki.to_pkcs12(issued.chain, issued.private_key, b"x")
    with pytest.raises(ValueError, match="needs a password"):
        pki.to_pkcs12(issued, None, b"")
    with pytest.raises(CertificateError, match="does not match"):
        pki.to_pkcs12(issued.chain, pki.generate_private_key(), b"x")


# --- the development CA ---------------------------------------------------------------------


def test_framework_home_follows_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path / "h"))
    assert pki.framework_home() == tmp_path / "h"
    monkeypatch.delenv("FRAMEWORK_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert pki.framework_home() == tmp_path / "xdg" / "framework"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pki.framework_home() == tmp_path / ".local" / "share" / "framework"


def test_dev_certificate_makes_constrained_ca_and_localhost_certificate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path))
    dev = pki.dev_certificate()
    directory = tmp_path / "dev-ca"
    assert dev == pki.DevCertificate(
        directory / "ca.pem", directory / "localhost.pem", directory / "localhost.key"
    )
    assert _mode(directory) == 0o700
    assert _mode(directory / "ca.key") == 0o600
    assert _mode(dev.key_path) == 0o600
    [ca_cert] = pki.load_certificates(dev.ca_cert_path)
    nc = _ext(ca_cert, x509.NameConstraints)
    assert nc.critical
    assert set(nc.value.permitted_subtrees or ()) == {
        x509.DNSName("localhost"), x509.DNSName("test"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    }  # fmt: skip
    assert "development CA" in ca_cert.subject.rfc4514_string()
    chain = pki.check_server_files(dev.cert_path, dev.key_path)
    for host in DEV_HOSTS:
        _cryptography_verify(chain, ca_cert, host)
    ca = pki.CertificateAuthority.load(directory)
    with pytest.raises(PolicyError, match="refuses example.com"):
        ca.issue(["example.com"])


def test_dev_certificate_reuses_then_renews(tmp_path: Path) -> None:
    first = pki.dev_certificate(tmp_path)
    leaf = pki.load_certificates(first.cert_path)[0]
    ca_pem = first.ca_cert_path.read_bytes()
    assert pki.dev_certificate(tmp_path) == first
    assert pki.load_certificates(first.cert_path)[0] == leaf  # still current: kept
    remaining = leaf.not_valid_after_utc - NOW
    soon = NOW + remaining - dt.timedelta(days=limits.DEV_RENEW_DAYS - 1)
    pki.dev_certificate(tmp_path, now=soon)
    renewed = pki.load_certificates(first.cert_path)[0]
    assert renewed != leaf
    assert renewed.not_valid_after_utc > leaf.not_valid_after_utc
    assert first.ca_cert_path.read_bytes() == ca_pem  # the trusted CA stays
    assert _mode(first.key_path) == 0o600


def test_dev_certificate_reissues_missing_or_mismatched_files(tmp_path: Path) -> None:
    dev = pki.dev_certificate(tmp_path)
    dev.key_path.unlink()
    pki.dev_certificate(tmp_path)
    pki.check_server_files(dev.cert_path, dev.key_path)
    dev.cert_path.write_text("garbage")
    pki.dev_certificate(tmp_path)
    pki.check_server_files(dev.cert_path, dev.key_path)
    pki.write_private_key(dev.key_path, pki.generate_private_key(), force=True)
    pki.dev_certificate(tmp_path)
    pki.check_server_files(dev.cert_path, dev.key_path)


def test_dev_certificate_recovers_from_a_crash_while_making_the_ca(tmp_path: Path) -> None:
    leftover = tmp_path / ".dev-ca.99999.tmp"
    leftover.mkdir()
    (leftover / "ca.key").write_text("half made")
    naive_now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    dev = pki.dev_certificate(tmp_path, now=naive_now)
    assert not leftover.exists()
    pki.check_server_files(dev.cert_path, dev.key_path)


def test_dev_certificate_explains_damaged_ca(tmp_path: Path) -> None:
    dev = pki.dev_certificate(tmp_path)
    (dev.ca_cert_path.parent / "ca.key").write_text("gone")
    with pytest.raises(
        CertificateError, match="development CA .* is damaged .*remove that directory"
    ):
        pki.dev_certificate(tmp_path)


def test_dev_certificate_is_safe_from_concurrent_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from framework import pki\n"
        "from cryptography.hazmat.primitives import hashes\n"
        "dev = pki.dev_certificate()\n"
        "chain = pki.check_server_files(dev.cert_path, dev.key_path)\n"
        "print(chain[0].fingerprint(hashes.SHA256()).hex())\n"
    )
    env = {**os.environ, "FRAMEWORK_HOME": str(tmp_path)}
    processes = [
        subprocess.Popen([sys.executable, "-c", code], cwd=_ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0]
    assert len(set(outputs)) == 1  # one CA, one certificate: nobody re-issued over another
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dev-ca.lock", "dev-ca"]
