"""ACME Renewal Information (RFC 9773): the CA's suggested window for renewing a certificate."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cryptography import x509

from .jws import b64url

__all__ = ["RenewalWindow", "certificate_id"]


def certificate_id(cert: x509.Certificate) -> str:
    """The ARI identifier: base64url(authority key identifier) "." base64url(serial, DER)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise ValueError("the certificate's authority key identifier has no keyIdentifier")
    serial = cert.serial_number
    # The INTEGER's DER content octets: big-endian, with a leading zero when the top bit is set.
    raw = serial.to_bytes((serial.bit_length() + 8) // 8 or 1, "big")
    return f"{b64url(aki.key_identifier)}.{b64url(raw)}"


def _parse_time(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class RenewalWindow:
    """A ``suggestedWindow``: renew at a random time between ``start`` and ``end``."""

    start: dt.datetime
    end: dt.datetime
    explanation: str | None = None

    @classmethod
    def from_json(cls, body: object) -> RenewalWindow:
        """Parse a renewalInfo response body.

        Raises:
            ValueError: it is not one (no window, or ``end`` before ``start``).
        """
        if not isinstance(body, dict) or not isinstance(body.get("suggestedWindow"), dict):
            raise ValueError("no suggestedWindow in the renewal information")
        window = body["suggestedWindow"]
        start, end = _parse_time(window.get("start")), _parse_time(window.get("end"))
        if end < start:
            raise ValueError("the suggested window ends before it starts")
        url = body.get("explanationURL")
        return cls(start, end, url if isinstance(url, str) else None)

    def pick(self, now: dt.datetime) -> dt.datetime:
        """A uniformly random time in the window (RFC 9773 section 4.2); now if it has passed."""
        if self.end <= now:
            return now
        start = max(self.start, now)
        return start + (self.end - start) * random.random()
