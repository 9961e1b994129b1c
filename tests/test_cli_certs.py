"""The ``certs`` subcommands, run in process through ``register`` and, for the exit-status
contract, once more through ``python -m framework``."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from framework import cli_certs, pki
from framework.errors import FrameworkError
from tests.conftest import TLSFiles

ROOT = Path(__file__).resolve().parent.parent


class Result:
    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err


Runner = Callable[..., Result]


@pytest.fixture
def certs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Runner:
    """Run ``framework certs ARGS`` in ``tmp_path`` the way ``cli.main`` does."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FRAMEWORK_HOME", str(tmp_path / "home"))

    def run(*argv: str) -> Result:
        parser = argparse.ArgumentParser(prog="framework")
        cli_certs.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["certs", *argv])
        try:
            status = args.func(args)
        except FrameworkError as exc:
            print(f"framework: error: {exc}", file=sys.stderr)
            status = 2
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return run


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _one_error_line(result: Result, *words: str) -> None:
    assert result.status == 2
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("framework: error: ")
    for word in words:
        assert word in lines[0]


def test_certs_ca_makes_ca_and_says_how_to_trust_it(certs: Runner, tmp_path: Path) -> None:
    result = certs("ca", "--dir", "pki", "--name", "Team CA")
    assert result.status == 0
    assert "pki/ca.pem" in result.out
    assert "curl --cacert pki/ca.pem" in result.out
    assert _mode(tmp_path / "pki" / "ca.key") == 0o600
    assert pki.CertificateAuthority.load(tmp_path / "pki").certificate.subject.rfc4514_string() == (
        "CN=Team CA"
    )


def test_certs_ca_refuses_existing_without_force(certs: Runner, tmp_path: Path) -> None:
    assert certs("ca", "--dir", "pki").status == 0
    before = (tmp_path / "pki" / "ca.pem").read_bytes()
    _one_error_line(certs("ca", "--dir", "pki"), "already holds a CA", "--force")
    assert (tmp_path / "pki" / "ca.pem").read_bytes() == before
    assert certs("ca", "--dir", "pki", "--force").status == 0
    assert (tmp_path / "pki" / "ca.pem").read_bytes() != before


def test_certs_ca_intermediate_with_permitted_names(certs: Runner, tmp_path: Path) -> None:
    assert certs("ca", "--dir", "root").status == 0
    result = certs(
        "ca", "--dir", "sub", "--parent", "root", "--permit", ".test", "--permit", "10.0.0.0/8"
    )
    assert result.status == 0
    assert "intermediate CA" in result.out
    assert "may certify only: .test, 10.0.0.0/8" in result.out
    assert "curl --cacert sub/root.pem" in result.out
    result = certs(
        "issue", "--ca", "sub", "--host", "example.com", "--out-cert", "c", "--out-key", "k"
    )
    _one_error_line(result, "refuses example.com", ".test")
    assert not (tmp_path / "k").exists()


def test_certs_request_makes_private_key_and_request(certs: Runner, tmp_path: Path) -> None:
    result = certs(
        "request", "--key", "srv.key", "--out", "srv.csr", "--host", "x.test", "--host", "10.0.0.1"
    )
    assert result.status == 0
    assert "new ec-p256 private key, 0600" in result.out
    assert _mode(tmp_path / "srv.key") == 0o600
    csr = pki.load_signing_request(tmp_path / "srv.csr")
    assert csr.is_signature_valid
    assert csr.public_key() == pki.load_private_key(tmp_path / "srv.key").public_key()
    key_before = (tmp_path / "srv.key").read_bytes()
    # Again with --force: the existing key is used, never replaced.
    result = certs("request", "--key", "srv.key", "--out", "srv.csr", "--host", "x.test", "--force")
    assert result.status == 0
    assert "used the key in srv.key" in result.out
    assert (tmp_path / "srv.key").read_bytes() == key_before


def test_certs_request_refuses_existing_request_before_making_key(
    certs: Runner, tmp_path: Path
) -> None:
    (tmp_path / "srv.csr").write_text("keep")
    _one_error_line(
        certs("request", "--key", "new.key", "--out", "srv.csr", "--host", "x.test"), "--force"
    )
    assert not (tmp_path / "new.key").exists()
    _one_error_line(
        certs("request", "--key", "new.key", "--out", "o.csr", "--host", "a b"), "'a b'"
    )
    assert not (tmp_path / "new.key").exists()


def test_certs_sign_signs_request_with_chain(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "root")
    certs("ca", "--dir", "sub", "--parent", "root")
    certs("request", "--key", "srv.key", "--out", "srv.csr", "--host", "x.test")
    result = certs("sign", "srv.csr", "--ca", "sub", "--out", "srv.pem")
    assert result.status == 0
    assert "wrote srv.pem (server certificate + 1 intermediate for x.test" in result.out
    assert len(pki.check_server_files(tmp_path / "srv.pem", tmp_path / "srv.key")) == 2
    _one_error_line(certs("sign", "srv.csr", "--ca", "sub", "--out", "srv.pem"), "--force")


def test_certs_sign_client_certificate(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs("request", "--key", "c.key", "--out", "c.csr", "--host", "alice.test")
    assert certs("sign", "c.csr", "--ca", "pki", "--out", "c.pem", "--client").status == 0
    [leaf] = pki.load_certificates(tmp_path / "c.pem")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_certs_sign_warns_and_refuses_long_lifetimes(certs: Runner) -> None:
    certs("ca", "--dir", "pki")
    certs("request", "--key", "k", "--out", "r.csr", "--host", "x.test")
    result = certs("sign", "r.csr", "--ca", "pki", "--out", "a.pem", "--days", "500")
    assert result.status == 0
    assert result.err == (
        "framework: warning: 500 days is more than browsers accept (398); "
        "they will refuse this certificate\n"
    )
    _one_error_line(certs("sign", "r.csr", "--ca", "pki", "--out", "b.pem", "--days", "900"), "825")


def test_certs_sign_refuses_tampered_request(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs("request", "--key", "k", "--out", "r.csr", "--host", "x.test")
    der = bytearray(
        pki.load_signing_request(tmp_path / "r.csr").public_bytes(serialization.Encoding.DER)
    )
    der[-3] ^= 0x01
    (tmp_path / "bad.csr").write_bytes(bytes(der))
    _one_error_line(
        certs("sign", "bad.csr", "--ca", "pki", "--out", "o.pem"), "signature does not verify"
    )
    _one_error_line(certs("sign", "missing.csr", "--ca", "pki", "--out", "o.pem"), "missing.csr")
    _one_error_line(certs("sign", "r.csr", "--ca", "nope", "--out", "o.pem"), "no CA in nope")


def test_certs_issue_writes_cert_and_private_key(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    result = certs(
        "issue", "--ca", "pki", "--host", "x.test", "--host", "127.0.0.1",
        "--out-cert", "c.pem", "--out-key", "c.key", "--key-type", "rsa-2048",
    )  # fmt: skip
    assert result.status == 0
    assert "wrote c.key (private key, 0600)" in result.out
    assert _mode(tmp_path / "c.key") == 0o600
    assert pki.describe_key(pki.load_private_key(tmp_path / "c.key")) == "rsa-2048"
    result = certs(
        "issue", "--ca", "pki", "--host", "x.test", "--out-cert", "c.pem", "--out-key", "d.key"
    )
    _one_error_line(result, "c.pem already exists", "--force")
    assert not (tmp_path / "d.key").exists()


def test_certs_verify_prints_ok(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs("issue", "--ca", "pki", "--host", "x.test", "--out-cert", "c.pem", "--out-key", "c.key")
    result = certs("verify", "c.pem", "--ca", "pki/ca.pem", "--host", "x.test")
    assert (result.status, result.out) == (0, "OK\n")


def _verify_failure(certs: Runner, *argv: str) -> str:
    result = certs("verify", *argv)
    assert result.status == 1
    assert result.out.startswith("FAILED: ")
    assert result.out.count("\n") == 1
    return result.out.removeprefix("FAILED: ").strip()


def test_certs_verify_gives_each_reason(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs("ca", "--dir", "sub", "--parent", "pki")
    certs("ca", "--dir", "other", "--name", "Other CA")
    certs("issue", "--ca", "pki", "--host", "x.test", "--out-cert", "c.pem", "--out-key", "c.key")
    certs(
        "issue",
        "--ca",
        "pki",
        "--host",
        "me.test",
        "--client",
        "--out-cert",
        "cl.pem",
        "--out-key",
        "cl.key",
    )
    certs("issue", "--ca", "sub", "--host", "x.test", "--out-cert", "s.pem", "--out-key", "s.key")
    ca = pki.CertificateAuthority.load(tmp_path / "pki")
    old = ca.issue(["x.test"], days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    old.write(tmp_path / "old.pem", tmp_path / "old.key")
    chain = pki.load_certificates(tmp_path / "s.pem")
    (tmp_path / "broken.pem").write_bytes(pki.certificates_pem([chain[0], ca.certificate]))

    assert _verify_failure(certs, "old.pem", "--ca", "pki/ca.pem").startswith(
        "certificate expired on "
    )
    assert _verify_failure(certs, "c.pem", "--ca", "pki/ca.pem", "--host", "y.test") == (
        "certificate is for x.test, not y.test"
    )
    assert _verify_failure(certs, "c.pem", "--ca", "other/ca.pem").startswith(
        "issuer not trusted ("
    )
    assert _verify_failure(certs, "cl.pem", "--ca", "pki/ca.pem") == (
        "not for server authentication (extendedKeyUsage is clientAuth)"
    )
    broken = _verify_failure(certs, "broken.pem", "--ca", "pki/ca.pem")
    assert broken.startswith("chain broken: ")
    assert certs("verify", "cl.pem", "--ca", "pki/ca.pem", "--client").status == 0
    assert certs("verify", "s.pem", "--ca", "sub/root.pem", "--host", "x.test").status == 0
    _one_error_line(certs("verify", "nothing.pem", "--ca", "pki/ca.pem"), "nothing.pem")


def test_certs_show_describes_certificate_chain(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs("ca", "--dir", "sub", "--parent", "pki", "--permit", ".test", "--permit", "::1")
    certs(
        "issue",
        "--ca",
        "sub",
        "--host",
        "x.test",
        "--host",
        "::1",
        "--out-cert",
        "c.pem",
        "--out-key",
        "c.key",
    )
    result = certs("show", "c.pem")
    assert result.status == 0
    assert result.err == ""
    leaf = pki.load_certificates(tmp_path / "c.pem")[0]
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex(":").upper()
    for expected in [
        "certificate 1 of 2:", "subject:  CN=x.test", "names:    x.test, ::1",
        "issuer:   CN=framework CA intermediate", "(89 days left)", "key:      ec-p256",
        f"sha256:   {fingerprint}", "usage:    server", "usage:    CA, pathlen 0",
        "permits:  test, ::1/128",
    ]:  # fmt: skip
        assert expected in result.out


def test_certs_show_warns_when_expiring_or_expired(certs: Runner, tmp_path: Path) -> None:
    certs("ca", "--dir", "pki")
    certs(
        "issue",
        "--ca",
        "pki",
        "--host",
        "x.test",
        "--days",
        "10",
        "--out-cert",
        "c.pem",
        "--out-key",
        "c.key",
    )
    result = certs("show", "c.pem")
    assert result.status == 0
    assert "expires in 9 days; issue a new one" in result.err
    ca = pki.CertificateAuthority.load(tmp_path / "pki")
    old = ca.issue(["x.test"], days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    old.write(tmp_path / "old.pem", tmp_path / "old.key")
    assert "old.pem (1) has expired" in certs("show", "old.pem").err


def test_certs_show_describes_signing_request(certs: Runner) -> None:
    certs("request", "--key", "k", "--out", "r.csr", "--host", "x.test")
    result = certs("show", "r.csr")
    assert "names:     x.test" in result.out
    assert "signature: valid" in result.out


def test_certs_pkcs12_reads_password_from_file_or_environment(
    certs: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs("ca", "--dir", "pki")
    certs("issue", "--ca", "pki", "--host", "x.test", "--out-cert", "c.pem", "--out-key", "c.key")
    (tmp_path / "pw").write_text("s3cret\n")
    result = certs(
        "pkcs12", "--cert", "c.pem", "--key", "c.key", "--out", "c.p12", "--password-file", "pw"
    )
    assert result.status == 0
    assert _mode(tmp_path / "c.p12") == 0o600
    loaded = pkcs12.load_pkcs12((tmp_path / "c.p12").read_bytes(), b"s3cret")
    assert loaded.cert is not None
    assert loaded.cert.certificate == pki.load_certificates(tmp_path / "c.pem")[0]
    monkeypatch.setenv("P12_PASSWORD", "other")
    result = certs(
        "pkcs12",
        "--cert",
        "c.pem",
        "--key",
        "c.key",
        "--out",
        "d.p12",
        "--password-env",
        "P12_PASSWORD",
    )
    assert result.status == 0
    assert pkcs12.load_pkcs12((tmp_path / "d.p12").read_bytes(), b"other").key is not None
    _one_error_line(
        certs(
            "pkcs12",
            "--cert",
            "c.pem",
            "--key",
            "c.key",
            "--out",
            "e.p12",
            "--password-env",
            "UNSET_VAR_X",
        ),
        "UNSET_VAR_X is not set",
    )
    (tmp_path / "empty").write_text("\n")
    _one_error_line(
        certs(
            "pkcs12",
            "--cert",
            "c.pem",
            "--key",
            "c.key",
            "--out",
            "e.p12",
            "--password-file",
            "empty",
        ),
        "needs a password",
    )


def test_certs_pkcs12_takes_no_password_argument(certs: Runner) -> None:
    with pytest.raises(SystemExit):
        certs("pkcs12", "--cert", "c", "--key", "k", "--out", "o", "--password", "x")


def test_certs_dev_ca_prints_its_certificate_path(certs: Runner, tmp_path: Path) -> None:
    result = certs("dev-ca")
    assert result.status == 0
    path = Path(result.out.strip())
    assert path == tmp_path / "home" / "dev-ca" / "ca.pem"
    assert pki.load_certificates(path)[0].extensions.get_extension_for_class(x509.NameConstraints)
    assert certs("dev-ca").out == result.out


def _framework(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FRAMEWORK_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-m", "framework", *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_certs_command_line_mistakes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert _framework(tmp_path, "certs", "ca", "--dir", "pki").returncode == 0
    for argv, words in [
        (["certs", "ca", "--dir", "pki"], ["--force"]),
        (
            ["certs", "issue", "--ca", "pki", "--host", "a b", "--out-cert", "c", "--out-key", "k"],
            ["'a b'"],
        ),
        (["certs", "sign", "x.csr", "--ca", "pki", "--out", "o", "--days", "0"], ["at least 1"]),
        (["certs", "ca", "--dir", "x", "--key-type", "dsa"], ["key type must be one of"]),
    ]:
        result = _framework(tmp_path, *argv)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("framework")
        assert all(word in lines[0] for word in words), lines[0]


@pytest.mark.parametrize("command", [["certs", "show"], ["limits"]])
def test_cli_output_to_a_reader_that_went_away_is_quiet(
    tls_files: TLSFiles, command: list[str]
) -> None:
    if command[0] == "certs":
        command = [*command, str(tls_files.server_cert)]
    process = subprocess.Popen(
        [sys.executable, "-m", "framework", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    process.stdout.close()  # as `| head` does once it has read enough: every write fails
    _, err = process.communicate(timeout=60)
    assert err == ""
    assert process.returncode == 1
