"""The TLS-ALPN-01 answer (RFC 8737) on the HTTPS port, for the clients that ask for it only.

The CA's validator connects with ALPN ``acme-tls/1`` alone and the name in SNI; it must be
shown a self-signed certificate for the name carrying the ``id-pe-acmeIdentifier`` extension
(the SHA-256 of the key authorization). Every other client must keep getting the real
certificate, so the choice depends on the offered ALPN list, which ``sni_callback`` does not
see: the ClientHello is read from ``SSLContext._msg_callback`` (private, undocumented; see
``read_client_hello_hook``), installed only while a challenge is pending.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "ACME_TLS_ALPN",
    "TlsAlpnResponder",
    "hook_available",
    "parse_client_hello",
    "self_signed",
]

log = logging.getLogger("framework.acme")

ACME_TLS_ALPN = "acme-tls/1"
ID_PE_ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
_OFFER_ATTR = "_framework_acme_alpn_offer"

SNICallback = Any  # ssl.SSLContext.sni_callback, whose stub type differs across versions


def self_signed(
    names: tuple[str, ...], key_authorization: str | None = None, days: int = 7
) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names``; (cert, key) PEM.

    With ``key_authorization``, it carries the critical acmeIdentifier extension of a
    TLS-ALPN-01 answer; without, it is the placeholder served until the first issuance.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    )
    if key_authorization is not None:
        digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
        # The extension's value is the DER of an OCTET STRING holding the digest (RFC 8737 3).
        value = b"\x04\x20" + digest
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ID_PE_ACME_IDENTIFIER, value), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def parse_client_hello(message: bytes) -> tuple[str | None, list[str]]:
    """The SNI name and the ALPN protocols offered in a ClientHello handshake message.

    ``message`` starts at the handshake header (type 1, 3-byte length), as
    ``_msg_callback`` gives it. Anything malformed gives ``(None, [])``.
    """
    try:
        if message[0] != 1:
            return None, []
        pos = 4 + 2 + 32  # header, legacy_version, random
        pos += 1 + message[pos]  # session id
        pos += 2 + int.from_bytes(message[pos : pos + 2], "big")  # cipher suites
        pos += 1 + message[pos]  # compression methods
        end = pos + 2 + int.from_bytes(message[pos : pos + 2], "big")
        pos += 2
        name: str | None = None
        alpn: list[str] = []
        while pos + 4 <= end:
            kind = int.from_bytes(message[pos : pos + 2], "big")
            size = int.from_bytes(message[pos + 2 : pos + 4], "big")
            body = message[pos + 4 : pos + 4 + size]
            pos += 4 + size
            if kind == 0 and len(body) > 5 and body[2] == 0:  # server_name, host_name
                length = int.from_bytes(body[3:5], "big")
                name = body[5 : 5 + length].decode("ascii").lower()
            elif kind == 16:  # application_layer_protocol_negotiation
                at = 2
                while at < len(body):
                    length = body[at]
                    alpn.append(body[at + 1 : at + 1 + length].decode("ascii", "replace"))
                    at += 1 + length
        return name, alpn
    except (IndexError, UnicodeDecodeError):
        return None, []


def hook_available() -> bool:
    """Whether this Python's ``ssl`` has the ``_msg_callback`` the offer is read from."""
    return isinstance(getattr(ssl.SSLContext, "_msg_callback", None), property)


def read_client_hello_hook(
    context: ssl.SSLContext, on_hello: Callable[[Any, bytes], None] | None
) -> None:
    """Install (or, with ``None``, remove) a hook that sees each received ClientHello.

    The one place that touches ``SSLContext._msg_callback``: CPython calls it as
    ``(conn, direction, version, content_type, msg_type, data)`` for every TLS message, the
    ClientHello before the SNI callback runs. ``tests/test_acme_tlsalpn.py`` fails if a Python
    version changes that.
    """

    def callback(
        conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes
    ) -> None:
        if direction == "read" and content_type == 22 and msg_type == 1:
            on_hello(conn, data)  # type: ignore[misc]

    context._msg_callback = callback if on_hello is not None else None  # type: ignore[attr-defined]


class TlsAlpnResponder:
    """Pending TLS-ALPN-01 answers, switched in for the clients that offer only acme-tls/1.

    Args:
        context: the HTTPS server's listening context (``CertificateStore.context``).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._pending: dict[str, ssl.SSLContext] = {}
        self._previous: SNICallback | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="framework-acme-tlsalpn-"))

    def add(self, name: str, key_authorization: str) -> None:
        """Answer ``name``'s challenge until ``remove(name)``."""
        cert_pem, key_pem = self_signed((name,), key_authorization)
        path = self._dir / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.pem"
        path.touch(mode=0o600)
        path.write_bytes(key_pem + cert_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(path)
        path.unlink()
        ctx.set_alpn_protocols([ACME_TLS_ALPN])
        if not self._pending:
            self._previous = self._context.sni_callback
            self._context.sni_callback = self._on_server_name
            read_client_hello_hook(self._context, self._on_hello)
        self._pending[name.lower()] = ctx

    def remove(self, name: str) -> None:
        """Stop answering ``name``; with none pending, the hooks are taken out again."""
        self._pending.pop(name.lower(), None)
        if not self._pending and self._previous is not None:
            read_client_hello_hook(self._context, None)
            self._context.sni_callback = self._previous
            self._previous = None

    def close(self) -> None:
        """Remove every answer and the temporary directory."""
        for name in list(self._pending):
            self.remove(name)
        self._dir.rmdir()

    def _on_hello(self, conn: Any, data: bytes) -> None:
        name, alpn = parse_client_hello(data)
        if alpn == [ACME_TLS_ALPN] and name in self._pending:
            setattr(conn, _OFFER_ATTR, name)

    def _on_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
    ) -> Any:
        name = getattr(ssl_object, _OFFER_ATTR, None)
        challenge = self._pending.get(name) if name is not None else None
        if challenge is not None and name == (server_name or "").lower():
            log.info("ACME: presenting the TLS-ALPN-01 certificate for %s", name)
            ssl_object.context = challenge
            return None
        return self._previous(ssl_object, server_name, ctx) if self._previous else None
