"""Revocation: a CA records the serials it revokes and signs CRLs listing them.

The CA's directory keeps ``serials.txt`` (every serial it issued, one hex serial a line),
``revoked.txt`` (``SERIAL DATE`` a line, the time of revocation in ISO 8601) and ``crlnumber``
(the last CRL's number, so each new CRL's is higher, as RFC 5280 section 5.2.3 requires).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509

from ..limits import BACKDATE_SECONDS, CRL_DAYS
from .ca import CertificateAuthority, _key_id
from .keys import as_utc, load_certificates, signature_hash

__all__ = ["make_crl", "parse_serial", "revoke", "revoked_serials"]


def parse_serial(text: str) -> int:
    """A serial number given as hex, as ``openssl x509 -serial`` and ``certs show`` print it
    (``3A:5F...``, ``0x3a5f...`` or ``3a5f...``), or the serial of a certificate file.

    Raises:
        ValueError: neither a hex serial nor a readable certificate file.
    """
    if os.path.isfile(text):
        return load_certificates(text)[0].serial_number
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        serial = int(cleaned, 16)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a hex serial number (as framework certs show prints it) nor a "
            "certificate file"
        ) from None
    if serial <= 0:
        raise ValueError("a serial number is positive")
    return serial


def _issued(ca: CertificateAuthority) -> set[int]:
    path = ca.directory / "serials.txt"
    if not path.exists():
        return set()
    return {int(line, 16) for line in path.read_text("ascii").split() if line}


def revoked_serials(ca: CertificateAuthority) -> dict[int, dt.datetime]:
    """The serials ``ca`` revoked, with when."""
    path = ca.directory / "revoked.txt"
    revoked: dict[int, dt.datetime] = {}
    if path.exists():
        for line in path.read_text("ascii").splitlines():
            if line.strip():
                serial, when = line.split()
                revoked[int(serial, 16)] = dt.datetime.fromisoformat(when)
    return revoked


def revoke(ca: CertificateAuthority, serial: int, *, now: dt.datetime | None = None) -> bool:
    """Record ``serial`` as revoked by ``ca``; the next CRL lists it.

    Returns False when it was revoked already (nothing changes).

    Raises:
        ValueError: ``ca`` did not issue that serial (it is not in its ``serials.txt``).
    """
    if serial not in _issued(ca):
        raise ValueError(
            f"serial {serial:X} was not issued by this CA (not in {ca.directory / 'serials.txt'});"
            " check the serial with framework certs show CERT"
        )
    if serial in revoked_serials(ca):
        return False
    when = as_utc(now).replace(microsecond=0)
    with open(ca.directory / "revoked.txt", "a", encoding="ascii") as f:
        f.write(f"{serial:x} {when.isoformat()}\n")
    return True


def make_crl(
    ca: CertificateAuthority, *, days: int = CRL_DAYS, now: dt.datetime | None = None
) -> x509.CertificateRevocationList:
    """A CRL signed by ``ca`` listing every serial it revoked, valid for ``days``.

    Its ``nextUpdate`` is ``days`` from now: make a new one before then, since servers and
    clients refuse every certificate of this CA once their CRL has expired.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    now = as_utc(now)
    number_file = Path(ca.directory / "crlnumber")
    number = int(number_file.read_text("ascii").strip() or "0") + 1 if number_file.exists() else 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - dt.timedelta(seconds=BACKDATE_SECONDS))
        .next_update(now + dt.timedelta(days=days))
        .add_extension(_key_id(ca.certificate), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in sorted(revoked_serials(ca).items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    key = ca._key  # noqa: SLF001 - the CA's own key, within the package that keeps it
    crl = builder.sign(key, signature_hash(key))
    number_file.write_text(f"{number}\n", "ascii")
    return crl
