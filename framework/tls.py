"""TLS policy for both roles, the server's reloadable certificate store, and TLS diagnostics.

This module decides how ``ssl.SSLContext`` objects are configured (versions, ciphers, ALPN,
verification, client certificates); the stdlib ``ssl`` module and the event loop do the
handshake. It also says why one failed: the client's hints for a refused handshake or
certificate, and the server's log line for a refused client certificate. It knows nothing of
HTTP; certificate files are checked with ``pki``.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from cryptography import x509

from . import limits, pki
from .errors import CertificateError, CertificateVerifyError, TLSError
from .messages import TLSInfo

__all__ = [
    "CertificateStore",
    "ClientCertMode",
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


def _base_context(purpose: ssl.Purpose) -> ssl.SSLContext:
    protocol = (
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(limits.TLS12_CIPHERS)
    ctx.set_alpn_protocols(list(limits.ALPN_PROTOCOLS))
    # Compression enables CRIME; renegotiation is a DoS lever and never needed by HTTP/1.1 here.
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    if purpose is ssl.Purpose.CLIENT_AUTH:
        # Use the server's preference (strongest first) rather than the client's.
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_SINGLE_ECDH_USE
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


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    *,
    client_ca: str | os.PathLike[str] | None = None,
    client_cert: ClientCertMode = "required",
) -> ssl.SSLContext:
    """A server context: TLS 1.2+, forward-secret AEAD ciphers, ALPN ``http/1.1``.

    Args:
        certfile: PEM file with the certificate, followed by any intermediates.
        keyfile: PEM file with the private key (when not inside ``certfile``).
        client_ca: ask clients for certificates signed by these CA(s) (mutual TLS).
        client_cert: with ``client_ca``: ``"required"`` refuses the handshake without one,
            ``"optional"`` lets handlers decide.

    Raises:
        CertificateError: the files cannot be read or do not belong together.
    """
    ctx = _base_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(ctx, certfile, keyfile)
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=os.fspath(client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise CertificateError(f"cannot load client CA {client_ca}: {exc}") from exc
        ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
        ctx.verify_flags |= _STRICT_FLAGS
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
) -> ssl.SSLContext:
    """A client context: verification on, host name checked, TLS 1.2+, ALPN ``http/1.1``.

    Args:
        ca: trust only these CA certificate file(s); the system's trust store when ``None``.
        cert: a client certificate (PEM, with intermediates) for mutual TLS.
        key: the client certificate's private key.

    Building one costs milliseconds (loading the trust store), so build it once per process
    or per client, off the hot path.
    """
    ctx = _base_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= _STRICT_FLAGS
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
            hint = f"the server's certificate does not name {host}"
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
    elif code == _INVALID_PURPOSE:
        hint = "the certificate is not for TLS servers (extendedKeyUsage lacks serverAuth)"
    else:
        hint = "the certificate breaks the rules of RFC 5280 or of the CA; re-issue it"
    return CertificateVerifyError(reason, host, hint)


class CertificateStore:
    """The server's certificate, switchable while the server runs.

    The listening context never changes; its SNI callback points each new handshake at the
    context in force, so a reload affects new connections only and open ones carry on.

    Args:
        certfile, keyfile, client_ca, client_cert: as for ``server_context``.
    """

    def __init__(
        self,
        certfile: str | os.PathLike[str],
        keyfile: str | os.PathLike[str] | None = None,
        *,
        client_ca: str | os.PathLike[str] | None = None,
        client_cert: ClientCertMode = "required",
    ) -> None:
        self._client_ca = client_ca
        self._client_cert: ClientCertMode = client_cert
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile) if keyfile is not None else None
        self._check(self.certfile, self.keyfile)
        self.context = server_context(
            certfile, keyfile, client_ca=client_ca, client_cert=client_cert
        )
        self._current = self.context
        self.context.sni_callback = self._on_server_name

    @staticmethod
    def _check(certfile: Path, keyfile: Path | None) -> None:
        pki.check_server_files(certfile, keyfile if keyfile is not None else certfile)

    def _on_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        setattr(ssl_object, _SNI_ATTR, server_name)
        if self._current is not ctx:
            ssl_object.context = self._current
        return None

    def reload(
        self,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
    ) -> None:
        """Check the new files and switch new handshakes to them.

        With no arguments, re-reads the files the store was made from (after a renewal wrote
        them anew). The old certificate stays in force when the new files fail the checks
        (key matches, chain order, not expired).

        Raises:
            CertificateError: the new files were refused; nothing changed.
        """
        cert_path = Path(certfile) if certfile is not None else self.certfile
        key_path = (
            Path(keyfile) if keyfile is not None else (self.keyfile if certfile is None else None)
        )
        self._check(cert_path, key_path)
        ctx = server_context(
            cert_path, key_path, client_ca=self._client_ca, client_cert=self._client_cert
        )
        self._current = ctx
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


# --- diagnostics: the server's refused handshakes ----------------------------------------------

# The loop does the TLS handshake before a ServerProtocol exists, and neither asyncio's nor
# uvloop's SSL protocol reports one that fails (ssl.SSLError is an OSError, which both log only
# in debug mode). The handshake runs through the context's SSLObject class, so a subclass sees
# the failure first: it logs one line and re-raises, and the loop carries on as before. The
# peer's address is not known at that level; the reason is.


def _reporting_class(log: logging.Logger) -> type[ssl.SSLObject]:
    class ReportingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not a failure: the handshake waits for the peer
            except ssl.SSLError as exc:
                _log_refused_handshake(log, exc)
                raise

    return ReportingSSLObject


_reporting_classes: dict[str, type[ssl.SSLObject]] = {}


def _log_refused_handshake(log: logging.Logger, exc: ssl.SSLError) -> None:
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message
        log.warning("TLS handshake refused: client certificate verify failed: %s", reason)
    elif exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        log.warning("TLS handshake refused: client certificate required (the client sent none)")
    else:
        log.debug("TLS handshake failed: %s", exc.reason or exc)


def report_refused_handshakes(context: ssl.SSLContext, log: logging.Logger) -> None:
    """Log one line to ``log`` for each handshake ``context`` refuses for want of a good client
    certificate.

    Only where there is something to say: client certificates are asked for, or debug logging
    is on (other failures are logged at debug level). The subclass costs ~14 us of a new
    connection (benchmarks/README.md, new-connection). Leaves a context whose
    ``sslobject_class`` was already replaced as it is.
    """
    if context.verify_mode == ssl.CERT_NONE and not log.isEnabledFor(logging.DEBUG):
        return
    if context.sslobject_class is ssl.SSLObject:
        cls = _reporting_classes.get(log.name)
        if cls is None:
            cls = _reporting_classes[log.name] = _reporting_class(log)
        context.sslobject_class = cls
