"""Why a request of a load run failed, in one line a user can act on.

The engine counts failures by kind (``ERROR_KINDS``) and keeps the first message of each, so a
run that fails says why instead of reporting a rate. The TLS messages are the client's own
(``tls.verify_error``, ``tls.handshake_error``) with the Python argument (``ca=``) named as the
command line's flag (``--ca``).
"""

from __future__ import annotations

import errno
import re
import ssl

from .. import tls

__all__ = ["connect_failure", "tls_failure"]

# The client's hints name keyword arguments; the load tool's user types flags.
_ARGUMENTS = (
    (re.compile(r"\bca='([^']*)'"), r"--ca \1"),
    (re.compile(r"\bcert= and key="), "--cert and --key"),
    (re.compile(r"\bcrl="), "a CRL"),
)

#: Where the development CA's certificate is, for the hint on an untrusted issuer.
DEV_CA_HINT = (
    "`python -m framework certs dev-ca` prints the development CA's path "
    "(or trust it once for every tool: framework certs trust)"
)


def _as_flags(text: str) -> str:
    for pattern, flag in _ARGUMENTS:
        text = pattern.sub(flag, text)
    return text


def connect_failure(exc: OSError, host: str, port: int) -> str:
    """The message for a TCP connect that failed."""
    where = f"{host}:{port}"
    if exc.errno == errno.ECONNREFUSED or isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused (is the server running there?)"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot connect to {where}: {reason}"


def tls_failure(exc: OSError, host: str, port: int) -> str:
    """The message for a TLS handshake that failed (or a peer that hung up during it)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = _as_flags(str(tls.verify_error(exc, host)))
        if "--ca" in text:
            text += f"; {DEV_CA_HINT}"
        return text
    if isinstance(exc, ssl.SSLError):
        return _as_flags(str(tls.handshake_error(exc, f"{host}:{port}")))
    reason = exc.strerror or str(exc) or type(exc).__name__
    return (
        f"TLS with {host}:{port} failed: the server closed the connection during the handshake "
        f"({reason}); is it serving HTTPS on this port?"
    )
