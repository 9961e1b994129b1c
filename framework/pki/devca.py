"""The local development CA: made on first use, trusted by the developer, localhost only.

Owns the ``dev-ca`` directory under ``framework_home()`` and the localhost certificate in it,
renewed before it runs out. The CA's certificate carries a critical name constraint, so
trusting it cannot be turned against any other site. Knows nothing of servers or TLS
contexts; ``deploy`` and ``testing`` ask it for file paths.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CertificateError
from ..limits import DEV_CA_PERMITTED_DNS, DEV_CA_PERMITTED_IPS, DEV_RENEW_DAYS, LEAF_DAYS
from .ca import CertificateAuthority
from .keys import (
    as_utc,
    framework_home,
    load_certificates,
    load_private_key,
    write_file,
    write_private_key,
)
from .verify import verify_certificate

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; first use is not raced
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEV_HOSTS", "DevCertificate", "dev_certificate"]

#: The names of the development certificate.
DEV_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class DevCertificate:
    """Where the development CA and its localhost certificate are.

    Attributes:
        ca_cert_path: the CA certificate to trust (``curl --cacert``, ``Client(ca=...)``).
        cert_path: the localhost certificate chain, for the server.
        key_path: its private key (0600).
        created: True when this call made the CA (nobody trusts it yet).
    """

    ca_cert_path: Path
    cert_path: Path
    key_path: Path
    # Not part of equality: two results naming the same files are the same certificate.
    created: bool = field(default=False, compare=False)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two processes starting at once (workers, a test run in parallel) must not both make a CA
    # or interleave the key of one certificate with another; an advisory lock serialises them.
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ca_name() -> str:
    # Name the CA after its owner, so that in a trust store it is clear whose it is (mkcert's
    # habit); fall back quietly where there is no user name to find.
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return f"framework development CA ({user}@{socket.gethostname()})"


def _load_or_create_ca(home: Path, directory: Path) -> tuple[CertificateAuthority, bool]:
    created = not (directory / "ca.pem").exists()
    if created:
        # Build the CA beside its final place and rename it in, so a crash half-way never
        # leaves a key without its certificate.
        # Under the lock nobody else is staging: what is left is from a caller that crashed.
        for leftover in home.glob(".dev-ca.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = home / f".dev-ca.{os.getpid()}.tmp"
        CertificateAuthority.create(
            staging,
            name=_ca_name(),
            permitted_dns=DEV_CA_PERMITTED_DNS,
            permitted_ips=DEV_CA_PERMITTED_IPS,
        )
        os.rename(staging, directory)
    try:
        return CertificateAuthority.load(directory), created
    except CertificateError as exc:
        raise CertificateError(
            f"the development CA in {directory} is damaged ({exc}); remove that directory to "
            "make a new one, then trust the new ca.pem"
        ) from exc


def _is_current(
    ca: CertificateAuthority, cert_path: Path, key_path: Path, now: dt.datetime
) -> bool:
    """True when the localhost certificate exists, fits its key and CA, and is not due."""
    try:
        chain = load_certificates(cert_path)
        key = load_private_key(key_path)
        if chain[0].public_key() != key.public_key():
            return False
        # Checked as a client would, at the renewal time: a certificate that will not verify
        # in DEV_RENEW_DAYS (or was made by an earlier CA, or for other names) is re-issued.
        later = now + dt.timedelta(days=DEV_RENEW_DAYS)
        for host in DEV_HOSTS:
            verify_certificate(chain, [ca.certificate], host=host, now=later)
    except CertificateError:
        return False
    return True


def dev_certificate(home: Path | None = None, *, now: dt.datetime | None = None) -> DevCertificate:
    """Return the development CA and a current localhost certificate, making them as needed.

    The first call makes a CA under ``home/"dev-ca"`` (directory 0700, key 0600), constrained
    to ``DEV_CA_PERMITTED_DNS`` and ``DEV_CA_PERMITTED_IPS``, and a certificate for
    localhost, 127.0.0.1 and ::1 (``localhost.pem``, ``localhost.key``). Later calls re-issue
    that certificate when it is missing, damaged, or has fewer than ``DEV_RENEW_DAYS`` left.
    Safe when several processes call it at once.

    Args:
        home: the state directory; ``framework_home()`` when omitted.
        now: the time to check and issue at (tests); the current time when omitted.

    Raises:
        CertificateError: the development CA is damaged or expired (the message says to
            remove it).
    """
    home = Path(home) if home is not None else framework_home()
    now = as_utc(now)
    directory = home / "dev-ca"
    cert_path, key_path = directory / "localhost.pem", directory / "localhost.key"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(home / ".dev-ca.lock"):
        ca, created = _load_or_create_ca(home, directory)
        if ca.certificate.not_valid_after_utc < now + dt.timedelta(days=DEV_RENEW_DAYS):
            raise CertificateError(
                f"the development CA in {directory} expires on "
                f"{ca.certificate.not_valid_after_utc.date()}; remove that directory to make a "
                "new one, then trust the new ca.pem"
            )
        if not _is_current(ca, cert_path, key_path, now):
            issued = ca.issue(DEV_HOSTS, days=LEAF_DAYS, now=now)
            # Each file is replaced atomically and the key is 0600 from the start; the lock
            # keeps another caller from seeing the new key with the old certificate.
            write_private_key(key_path, issued.private_key, force=True)
            write_file(cert_path, issued.cert_pem, force=True)
    return DevCertificate(directory / "ca.pem", cert_path, key_path, created)
