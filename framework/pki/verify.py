"""Verification: does a chain lead to a trusted CA, fit its use, and match its key.

Owns the checks a TLS peer will make, made ahead of time with the precise reason for each
failure (expired when, which names, which link of the chain is broken), and the checks of a
server's certificate and key files before they are put to use. Knows nothing of how
certificates are issued (``ca``) or of TLS contexts (``tls``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import CertificateError
from .hostnames import Host, common_name, host_matches, parse_host, subject_names
from .keys import PrivateKey, as_utc, load_certificates, load_private_key

__all__ = ["check_key_matches", "check_server_files", "verify_certificate"]


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_certificate(
    chain: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    *,
    host: str | None = None,
    client: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Check that ``chain`` (leaf first) leads to one of ``trusted`` and fits its use.

    The checks are the ones a TLS client makes (RFC 5280 path validation with the web PKI's
    profile, by cryptography's verifier); the common failures are found first so that the
    message says exactly what is wrong.

    Args:
        chain: the leaf, then any intermediates (the contents of a server's certificate file).
        trusted: the CA certificates to trust.
        host: the name the leaf must carry; any of its names when omitted.
        client: check for client authentication instead of server authentication.
        now: the time to check at; the current time when omitted.

    Raises:
        CertificateError: with the reason, for example ``expired on 2026-01-31 12:00 UTC``,
            ``is for a.test, b.test, not other.test``, ``issuer not trusted (...)``,
            ``not for server authentication (...)`` or ``chain broken: ...``.
    """
    if not chain:
        raise CertificateError("no certificate to verify")
    if not trusted:
        raise CertificateError("no trusted CA certificate given")
    now = as_utc(now)
    leaf, intermediates = chain[0], list(chain[1:])
    for index, cert in enumerate(chain):
        what = "certificate" if index == 0 else f"intermediate {common_name(cert)!r}"
        if now > cert.not_valid_after_utc:
            raise CertificateError(f"{what} expired on {_when(cert.not_valid_after_utc)}")
        if now < cert.not_valid_before_utc:
            raise CertificateError(f"{what} is not valid until {_when(cert.not_valid_before_utc)}")
    names = subject_names(leaf)
    if not names:
        raise CertificateError("certificate has no subjectAltName (clients ignore the CN)")
    subject: Host = parse_host(host) if host else parse_host(names[0])
    if host and not host_matches(subject, names):
        raise CertificateError(f"certificate is for {', '.join(names)}, not {host}")
    role, oid = (
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)
        if client
        else ("server", ExtendedKeyUsageOID.SERVER_AUTH)
    )
    try:
        eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = [oid]  # no extendedKeyUsage means any usage (RFC 5280 section 4.2.1.12)
    if oid not in eku:
        usages = ", ".join(getattr(u, "_name", u.dotted_string) for u in eku)
        raise CertificateError(f"not for {role} authentication (extendedKeyUsage is {usages})")
    _check_chain_order(
        chain, "chain broken: ", "put each issuer right after the certificate it signed"
    )
    top = chain[-1]
    if top not in trusted and not any(_issued_by(top, ca) for ca in trusted):
        raise CertificateError(
            f"issuer not trusted ({common_name(top)!r} was signed by "
            f"{top.issuer.rfc4514_string()!r}, which is not among the trusted CA certificates, "
            "nor an intermediate in the chain)"
        )

    builder = verification.PolicyBuilder().store(verification.Store(list(trusted))).time(now)
    try:
        if client:
            builder.build_client_verifier().verify(leaf, intermediates)
        else:
            builder.build_server_verifier(subject).verify(leaf, intermediates)
    except verification.VerificationError as exc:
        raise CertificateError(f"certificate rejected: {exc}") from exc


def _check_chain_order(chain: Sequence[x509.Certificate], where: str, fix: str) -> None:
    """Each certificate of ``chain`` must be issued by the next one.

    Raises:
        CertificateError: "``where``certificate N+1 did not issue certificate N; ``fix``".
    """
    for index in range(len(chain) - 1):
        if not _issued_by(chain[index], chain[index + 1]):
            raise CertificateError(
                f"{where}certificate {index + 2} ({common_name(chain[index + 1])!r}) did not "
                f"issue certificate {index + 1} ({common_name(chain[index])!r}); {fix}"
            )


def check_key_matches(cert: x509.Certificate, key: PrivateKey) -> None:
    """Check that ``key`` is the private half of ``cert``'s public key.

    Raises:
        CertificateError: they do not belong together.
    """
    if cert.public_key() != key.public_key():
        raise CertificateError(
            f"the key does not match the certificate for {common_name(cert)!r} (was one of them "
            "remade?); use the key the signing request was made with"
        )


def check_server_files(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> list[x509.Certificate]:
    """Check a server's certificate file and key file before they are put to use.

    The certificate file must start with the server's own certificate, followed by each
    issuer in turn; the key must match the first certificate, which must be valid now.

    Returns:
        The certificates of ``cert_path``, leaf first.

    Raises:
        CertificateError: the files are unreadable or do not fit; the message names the file
            and the fix.
    """
    chain = load_certificates(cert_path)
    key = load_private_key(key_path)
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise CertificateError(
            f"{key_path} does not match the first certificate in {cert_path} "
            f"({common_name(leaf)!r}); the server's own certificate goes first, made from this key"
        )
    _check_chain_order(chain, f"{cert_path}: ", "order the file leaf first, then each issuer")
    now = as_utc(None)
    if now > leaf.not_valid_after_utc:
        raise CertificateError(
            f"{cert_path} expired on {_when(leaf.not_valid_after_utc)}; issue a new one "
            "(framework certs issue)"
        )
    if now < leaf.not_valid_before_utc:
        raise CertificateError(
            f"{cert_path} is not valid until {_when(leaf.not_valid_before_utc)}; check the "
            "clock of this machine and of the CA's"
        )
    return chain
