"""TLS policy for both roles, the server's reloadable certificate store, and TLS diagnostics.

This module decides how ``ssl.SSLContext`` objects are configured (Mozilla's profiles:
versions, ciphers, key-exchange groups, sessions; ALPN, verification, client certificates and
CRLs); the stdlib ``ssl`` module and the event loop do the handshake. ``native`` sets what
``ssl`` has no call for; ``report`` logs the handshakes the server refuses (and answers plain
HTTP sent to it). This module also says why a client's handshake failed: the hints for a
refused handshake or certificate. It knows nothing of HTTP; certificate files are checked with
``pki``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509

from .. import limits, pki
from ..errors import CertificateError, CertificateVerifyError, TLSError
from ..messages import TLSInfo
from . import native
from .report import report_refused_handshakes

__all__ = [
    "CertificateStore",
    "TLS_PROFILES",
    "ClientCertMode",
    "TLSProfile",
    "certificate_names",
    "client_context",
    "handshake_error",
    "is_name_mismatch",
    "report_refused_handshakes",
    "server_context",
    "tls_info",
    "verify_error",
]

log = logging.getLogger("framework.tls")

ClientCertMode = Literal["none", "optional", "required"]

# Attribute set on each server-side SSLObject by the SNI callback: the stdlib exposes the
# name the client asked for only to that callback.
_SNI_ATTR = "_framework_server_name"

# VERIFY_X509_STRICT rejects certificates that break RFC 5280 (missing key identifiers, a CA
# without basicConstraints ...); Python 3.13 turns it on by default, we do on every version.
_STRICT_FLAGS = getattr(ssl, "VERIFY_X509_STRICT", 0) | getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)


TLSProfile = Literal["intermediate", "modern"]

#: Mozilla's server-side configurations (https://wiki.mozilla.org/Security/Server_Side_TLS):
#: "intermediate" (the default) takes TLS 1.2 and 1.3, "modern" TLS 1.3 alone.
TLS_PROFILES: tuple[TLSProfile, ...] = ("intermediate", "modern")


def _base_context(purpose: ssl.Purpose, profile: TLSProfile = "intermediate") -> ssl.SSLContext:
    if profile not in TLS_PROFILES:
        raise ValueError(f"tls_profile must be 'intermediate' or 'modern', not {profile!r}")
    protocol = (
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if profile == "modern" else ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(limits.TLS12_CIPHERS)
    ctx.set_alpn_protocols(list(limits.ALPN_PROTOCOLS))
    # Compression enables CRIME; renegotiation is a DoS lever and never needed by HTTP/1.1 here.
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    if purpose is ssl.Purpose.CLIENT_AUTH:
        # Fresh ECDHE keys per handshake; the client picks among our (all strong) suites, as
        # Mozilla's profiles now advise, so a client without AES hardware may take ChaCha20.
        ctx.options |= ssl.OP_SINGLE_ECDH_USE
        # False where this Python offers no way (native.py logged why, once, at DEBUG).
        native.set_groups(ctx, limits.TLS_GROUPS)
    return ctx


def _load_chain(
    ctx: ssl.SSLContext, certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None
) -> None:
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"cannot load certificate {certfile} with key {keyfile or certfile}: "
            f"{getattr(exc, 'reason', None) or exc.strerror or exc}; check that the key belongs "
            "to the certificate and both are PEM files"
        ) from exc


def _load_crl(ctx: ssl.SSLContext, crl: str | os.PathLike[str]) -> None:
    """Check revocation of the peer's certificate against the CRL(s) in the PEM file ``crl``.

    Only the leaf is checked (``VERIFY_CRL_CHECK_LEAF``), against a CRL of its issuer: one
    that is missing, expired or badly signed fails the handshake (closed, not open).
    """
    path = Path(crl)
    try:
        data = path.read_bytes()
        marker = b"-----BEGIN X509 CRL-----"
        lists = [x509.load_pem_x509_crl(marker + part) for part in data.split(marker)[1:]]
        if not lists:
            raise ValueError("no PEM CRL (-----BEGIN X509 CRL-----) in it")
        ctx.load_verify_locations(cafile=os.fspath(path))
    except (OSError, ValueError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise CertificateError(
            f"cannot load CRL {path}: {why}; make one with: framework certs crl --ca DIR --out "
            f"{path}"
        ) from exc
    now = dt.datetime.now(dt.UTC)
    for item in lists:
        if item.next_update_utc is not None and item.next_update_utc < now:
            log.warning(
                "CRL %s expired on %s: every certificate it covers is refused until it is "
                "renewed (framework certs crl)",
                path,
                f"{item.next_update_utc:%Y-%m-%d %H:%M} UTC",
            )
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    *,
    client_ca: str | os.PathLike[str] | None = None,
    client_cert: ClientCertMode = "required",
    client_crl: str | os.PathLike[str] | None = None,
    tls_profile: TLSProfile = "intermediate",
    session_resumption: bool = True,
) -> ssl.SSLContext:
    """A server context after Mozilla's "intermediate" profile (or "modern"), ALPN ``http/1.1``.

    Intermediate: TLS 1.2 and 1.3, ECDHE key exchange over X25519, P-256 or P-384, AEAD
    ciphers only, no compression, no renegotiation. Modern: the same with TLS 1.3 alone.

    Args:
        certfile: PEM file with the certificate, followed by any intermediates.
        keyfile: PEM file with the private key (when not inside ``certfile``).
        client_ca: ask clients for certificates signed by these CA(s) (mutual TLS).
        client_cert: with ``client_ca``: ``"required"`` refuses the handshake without one,
            ``"optional"`` lets handlers decide.
        client_crl: with ``client_ca``: refuse client certificates this CRL (PEM) revokes.
        tls_profile: ``"intermediate"`` (default) or ``"modern"`` (TLS 1.3 only).
        session_resumption: send session tickets and keep a session cache, so a returning
            client skips the full handshake; ``False`` makes every handshake a full one.

    Raises:
        CertificateError: the files cannot be read or do not belong together.
    """
    ctx = _base_context(ssl.Purpose.CLIENT_AUTH, tls_profile)
    if not session_resumption:
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
        native.set_session_cache(ctx, False)
    _load_chain(ctx, certfile, keyfile)
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=os.fspath(client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(f"cannot load client CA {client_ca}: {exc}") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
        ctx.verify_flags |= _STRICT_FLAGS
        if client_crl is not None:
            _load_crl(ctx, client_crl)
    elif client_crl is not None:
        raise ValueError(
            "client_crl needs client_ca: the CRL revokes that CA's client certificates"
        )
    elif client_cert not in ("none", "required", "optional"):
        raise ValueError(
            f"client_cert must be 'none', 'optional' or 'required', not {client_cert!r}"
        )
    return ctx


_default_verify_lock = threading.Lock()
_default_verify_paths: ssl.SSLContext | None = None


def client_context(
    ca: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    crl: str | os.PathLike[str] | None = None,
) -> ssl.SSLContext:
    """A client context: verification on, host name checked, TLS 1.2+, ALPN ``http/1.1``.

    The host must be named in the certificate's subjectAltName: a name in the subject's CN
    alone is refused (RFC 6125 section 6.4.4, as browsers do).

    Args:
        ca: trust only these CA certificate file(s); the system's trust store when ``None``.
        cert: a client certificate (PEM, with intermediates) for mutual TLS.
        key: the client certificate's private key.
        crl: refuse server certificates this CRL (PEM) revokes; the handshake then also fails
            when the CRL is missing for the server's issuer or has expired.

    Building one costs milliseconds (loading the trust store), so build it once per process
    or per client, off the hot path.
    """
    ctx = _base_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= _STRICT_FLAGS
    # The stdlib default is True, which falls back to the CN when there is no subjectAltName.
    ctx.hostname_checks_common_name = False
    if ca is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        for path in [ca] if isinstance(ca, str | os.PathLike) else ca:
            try:
                ctx.load_verify_locations(cafile=os.fspath(path))
            except (ssl.SSLError, OSError) as exc:
                raise CertificateError(
                    f"cannot load CA certificate {os.fspath(path)}: {exc}; pass a PEM file"
                ) from exc
    if crl is not None:
        _load_crl(ctx, crl)
    if cert is not None:
        _load_chain(ctx, cert, key)
    return ctx


# --- why a client's handshake failed --------------------------------------------------------
# The client raises these; they take the host as text, so nothing here knows of connections.


def handshake_error(exc: ssl.SSLError, where: str) -> TLSError:
    """``exc`` (a failed handshake, or a TLS alert later) as a ``TLSError`` with a hint.

    Args:
        exc: the ``ssl`` module's error.
        where: the peer, as the message should name it (``"https://example.test:443"``).
    """
    reason = getattr(exc, "reason", None) or str(exc)
    text = str(reason).upper()
    if "CERTIFICATE_REQUIRED" in text or ("HANDSHAKE_FAILURE" in text and "ALERT" in text):
        hint = "the server may require a client certificate: pass cert= and key="
    elif "UNKNOWN_CA" in text or "BAD_CERTIFICATE" in text:
        hint = "the server did not accept our client certificate: check cert= and key="
    elif "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER" in text:
        hint = "the server does not speak TLS on this port: try http://"
    elif "VERSION" in text or "NO_PROTOCOLS" in text:
        hint = "the server offers no TLS version we accept (TLS 1.2 is the minimum)"
    else:
        hint = "see the TLS alert above"
    error = TLSError(f"TLS with {where} failed: {reason} ({hint})")
    error.__cause__ = exc
    return error


# OpenSSL's X509_V_ERR_* codes we have a hint for.
_EXPIRED, _NOT_YET_VALID, _SELF_SIGNED, _SELF_SIGNED_IN_CHAIN = 10, 9, 18, 19
_NO_LOCAL_ISSUER, _NO_ISSUER, _LEAF_UNVERIFIABLE, _HOSTNAME, _IP = 20, 2, 21, 62, 64
_INVALID_PURPOSE = 26
_REVOKED, _NO_CRL, _CRL_EXPIRED, _CRL_NOT_YET_VALID, _CRL_SIGNATURE = 23, 3, 12, 11, 8


def is_name_mismatch(exc: ssl.SSLCertVerificationError) -> bool:
    """True when the certificate was refused for not naming the host: then the names it does
    carry make the hint (see ``certificate_names``)."""
    return exc.verify_code in (_HOSTNAME, _IP)


def certificate_names(der: bytes) -> list[str]:
    """The DNS names and IP addresses in a DER certificate's subjectAltName; none if unreadable.

    For error messages only: the certificate is not verified.
    """
    try:
        return pki.subject_names(x509.load_der_x509_certificate(der))
    except ValueError:
        return []


def verify_error(
    exc: ssl.SSLCertVerificationError,
    host: str,
    names: Sequence[str] = (),
    address: str | None = None,
) -> CertificateVerifyError:
    """``exc`` as a ``CertificateVerifyError`` whose hint says how to fix it.

    Args:
        exc: the ``ssl`` module's verification error.
        host: the name the certificate was checked against.
        names: the names the certificate carries, when ``is_name_mismatch(exc)``.
        address: the address connected to, when it is not ``host`` (a pinned address).
    """
    code = exc.verify_code
    reason = exc.verify_message or str(exc.reason or exc)
    if code in (_HOSTNAME, _IP):
        if names:
            hint = f"the server's certificate is for {', '.join(names)}, not {host}"
        else:
            hint = (
                f"the server's certificate does not name {host} in a subjectAltName (a name "
                "in the subject CN alone is not accepted)"
            )
        if address is not None and address != host:
            hint += f" (connected to {address} for {host})"
    elif code == _EXPIRED:
        hint = "the server's certificate has expired: renew it (or check this machine's clock)"
    elif code == _NOT_YET_VALID:
        hint = "the server's certificate is not valid yet: check this machine's clock"
    elif code == _SELF_SIGNED:
        hint = "the server's certificate is self-signed: pass ca='path/to/its/cert.pem' to trust it"
    elif code == _SELF_SIGNED_IN_CHAIN:
        hint = "issuer not trusted: the chain ends in an untrusted root; pass ca='path/to/ca.pem'"
    elif code in (_NO_LOCAL_ISSUER, _NO_ISSUER, _LEAF_UNVERIFIABLE):
        hint = (
            "issuer not trusted: pass ca='path/to/ca.pem'; if that CA is trusted already, "
            "the server is not sending its intermediate certificate(s)"
        )
    elif code == _REVOKED:
        hint = "the server's certificate is revoked by the CRL passed as crl="
    elif code == _NO_CRL:
        hint = "the CRL passed as crl= is not from the CA that issued the server's certificate"
    elif code in (_CRL_EXPIRED, _CRL_NOT_YET_VALID):
        hint = "the CRL passed as crl= is out of date: fetch or make a new one"
    elif code == _CRL_SIGNATURE:
        hint = "the CRL passed as crl= is not signed by the server's CA"
    elif code == _INVALID_PURPOSE:
        hint = "the certificate is not for TLS servers (extendedKeyUsage lacks serverAuth)"
    else:
        hint = "the certificate breaks the rules of RFC 5280 or of the CA; re-issue it"
    return CertificateVerifyError(reason, host, hint)


class CertificateStore:
    """The server's certificate (and client CRL), switchable while the server runs.

    The listening context never changes; its SNI callback points each new handshake at the
    context in force, so a reload affects new connections only and open ones carry on. The
    client CRL is re-read by ``reload()`` and, without one, when its file changes (looked at
    no more than once a second, by the next handshake).

    Args:
        certfile, keyfile, client_ca, client_cert, client_crl, tls_profile,
            session_resumption: as for ``server_context``.
    """

    def __init__(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        *,
        client_ca: str | os.PathLike[str] | None = None,
        client_cert: ClientCertMode = "required",
        client_crl: str | os.PathLike[str] | None = None,
        tls_profile: TLSProfile = "intermediate",
        session_resumption: bool = True,
    ) -> None:
        self._client_ca = client_ca
        self._client_cert: ClientCertMode = client_cert
        self.client_crl = Path(client_crl) if client_crl is not None else None
        self.tls_profile: TLSProfile = tls_profile
        self._resumption = session_resumption
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile) if keyfile is not None else None
        self._check(self.certfile, self.keyfile)
        self._crl_stamp = self._crl_state()
        self._crl_checked = time.monotonic()
        self.context = self._context(self.certfile, self.keyfile)
        self._current = self.context
        self.context.sni_callback = self._on_server_name

    def _context(self, certfile: Path, keyfile: Path | None) -> ssl.SSLContext:
        return server_context(
            certfile,
            keyfile,
            client_ca=self._client_ca,
            client_cert=self._client_cert,
            client_crl=self.client_crl,
            tls_profile=self.tls_profile,
            session_resumption=self._resumption,
        )

    @staticmethod
    def _check(certfile: Path, keyfile: Path | None) -> None:
        pki.check_server_files(certfile, keyfile if keyfile is not None else certfile)

    def _crl_state(self) -> tuple[int, int, int] | None:
        if self.client_crl is None:
            return None
        try:
            st = self.client_crl.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _on_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        setattr(ssl_object, _SNI_ATTR, server_name)
        if self.client_crl is not None:
            self._check_crl_changed()
        if self._current is not ctx:
            ssl_object.context = self._current
        return None

    def _check_crl_changed(self) -> None:
        now = time.monotonic()
        if now - self._crl_checked < 1.0:
            return
        self._crl_checked = now
        stamp = self._crl_state()
        if stamp == self._crl_stamp or stamp is None:
            return  # unchanged, or gone for a moment while it is being replaced
        self._crl_stamp = stamp
        try:
            self._current = self._context(self.certfile, self.keyfile)
        except (CertificateError, OSError) as exc:
            log.error("client CRL reload refused, keeping the old one: %s", exc)
            return
        log.info("client CRL reloaded from %s", self.client_crl)

    def reload(
        self,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        """Check the new files and switch new handshakes to them (and to the client CRL).

        With no arguments, re-reads the files the store was made from (after a renewal wrote
        them anew). The old certificate stays in force when the new files fail the checks
        (key matches, chain order, not expired, a readable CRL).

        Raises:
            CertificateError: the new files were refused; nothing changed.
        """
        cert_path = Path(certfile) if certfile is not None else self.certfile
        key_path = (
            Path(keyfile) if keyfile is not None else (self.keyfile if certfile is None else None)
        )
        self._check(cert_path, key_path)
        stamp = self._crl_state()
        ctx = self._context(cert_path, key_path)
        self._current = ctx
        self._crl_stamp = stamp
        self.certfile, self.keyfile = cert_path, key_path
        log.info("certificate reloaded from %s", cert_path)

    def __repr__(self) -> str:
        return f"<CertificateStore {self.certfile}>"


def tls_info(ssl_object: ssl.SSLObject | None) -> TLSInfo | None:
    """What a connection's TLS layer agreed, for ``Request.tls``."""
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TLSInfo(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        server_name=getattr(ssl_object, _SNI_ATTR, None) or ssl_object.server_hostname,
        alpn_protocol=ssl_object.selected_alpn_protocol(),
        peer_certificate_der=ssl_object.getpeercert(binary_form=True),
    )
