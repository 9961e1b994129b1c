"""Diagnostics for the server's refused handshakes, and the answer to plain HTTP on a TLS port.

The loop does the TLS handshake before a ``ServerProtocol`` exists, and neither asyncio's nor
uvloop's SSL protocol reports one that fails (``ssl.SSLError`` is an ``OSError``, which both
log only in debug mode). The handshake runs through the context's ``SSLObject`` class, so a
subclass sees the failure first: it logs and re-raises, and the loop carries on as before.
The peer's address is not known at that level; the reason is.

What is logged, and how loud:

- a client certificate refused (mutual TLS): one WARNING line each, as before;
- a client that refused us or that we share nothing with (it does not trust our CA, it
  offers only TLS 1.0, no common cipher): INFO, rate-limited: the first of each reason at
  once with a hint, then at most one line per ``limits.TLS_FAILURE_LOG_INTERVAL`` with the
  counts since (each is also a DEBUG line);
- plain HTTP sent to the TLS port: answered ``400`` in plain text (as nginx does) and logged
  at INFO, rate-limited the same way. The answer goes out at once; the connection is closed
  when the client closes or sends more (curl and browsers close after reading it), or at the
  handshake deadline: the SSL protocols of both loops send nothing more once a handshake has
  failed, and give the ``SSLObject`` no way to close the socket itself;
- bytes that are neither TLS nor HTTP (a scanner, a confused client): DEBUG only.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import Counter
from typing import Any

from .. import limits

__all__ = ["PLAIN_HTTP_ANSWER", "PLAIN_HTTP_BODY", "report_refused_handshakes"]

#: What a plain-HTTP request to the TLS port is answered with (as nginx: 400, then close).
PLAIN_HTTP_BODY = (
    b"400 Bad Request: this port speaks HTTPS; the request was plain HTTP. Use https://\n"
)
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(PLAIN_HTTP_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n"
    b"\r\n" + PLAIN_HTTP_BODY
)

# OpenSSL's reasons for first bytes that are not a TLS ClientHello at all.
_GARBAGE = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "UNEXPECTED_MESSAGE",
        "UNEXPECTED_RECORD",
        "LENGTH_MISMATCH",
        "BAD_PACKET_LENGTH",
        "RECORD_LENGTH_MISMATCH",
        "EXCESSIVE_MESSAGE_SIZE",
        "DECODE_ERROR",
        "BAD_EXTENSION",
        "LENGTH_TOO_SHORT",
        "DATA_LENGTH_TOO_LONG",
        "ENCRYPTED_LENGTH_TOO_LONG",
    }
)

# Hints for the reasons a newcomer meets.
_HINTS = {
    "TLSV1_ALERT_UNKNOWN_CA": (
        "the client does not trust the CA that signed our certificate: give it the CA "
        "certificate (framework certs dev-ca prints the development CA's path; curl --cacert "
        "PATH)"
    ),
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the client refused our certificate (an untrusted CA, or a name it does not cover): "
        "check with framework certs verify CERT --ca CA --host NAME"
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": (
        "the client refused our certificate: check with framework certs verify CERT --ca CA "
        "--host NAME"
    ),
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS versions we refuse (below TLS 1.2)",
    "NO_SHARED_CIPHER": "the client offers no cipher suite we accept (ECDHE with AEAD)",
    "NO_SUITABLE_KEY_SHARE": "the client offers no key-exchange group we accept",
    "NO_SHARED_GROUPS": "the client offers no key-exchange group we accept",
    "VERSION_TOO_LOW": "the client offers only TLS versions we refuse",
}


class _Summary:
    """Counts failures; says the first of each kind at once, the rest at most once per interval.

    The kinds are OpenSSL's reasons, a small fixed set, so what is remembered stays bounded.
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.said: set[str] = set()
        self.last = time.monotonic()

    def add(self, what: str, hint: str | None) -> None:
        now = time.monotonic()
        args: tuple[object, ...]
        with self.lock:
            if what not in self.said and len(self.said) < 64:
                self.said.add(what)
                line, args = "TLS handshake failed: %s%s", (what, f" ({hint})" if hint else "")
            else:
                self.counts[what] += 1
                if now - self.last < limits.TLS_FAILURE_LOG_INTERVAL:
                    return
                total = sum(self.counts.values())
                common = ", ".join(f"{n} {r}" for r, n in self.counts.most_common(3))
                line, args = (
                    "%d more TLS handshake(s) failed in the last %.0f s: %s",
                    (total, now - self.last, common),
                )
                self.counts.clear()
                self.last = now
        self.log.info(line, *args)


def _reporting_class(log: logging.Logger) -> type[ssl.SSLObject]:
    summary = _Summary(log)

    class ReportingSSLObject(ssl.SSLObject):
        _framework_outgoing: ssl.MemoryBIO | None = None
        _framework_failed: ssl.SSLError | None = None

        @classmethod
        def _create(
            cls, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any, **kw: Any
        ) -> Any:
            obj = super()._create(incoming, outgoing, *args, **kw)  # type: ignore[misc]
            # Kept to answer plain HTTP: the loop sends whatever is in it to the raw socket.
            obj._framework_outgoing = outgoing
            return obj

        def do_handshake(self) -> None:
            if self._framework_failed is not None:
                raise self._framework_failed  # answered already: now the loop closes
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not a failure: the handshake waits for the peer
            except ssl.SSLError as exc:
                if exc.reason == "HTTP_REQUEST" and self._answer_plain_http(exc):
                    summary.add("plain HTTP request sent to the HTTPS port: answered 400", None)
                    # Neither loop sends what is in the outgoing BIO once the handshake
                    # failed, but both do while it "waits for the peer". So the answer goes
                    # out now, and the error is raised at the next call: when the client
                    # closes (curl and browsers do on Connection: close) or sends more, or
                    # at the handshake deadline.
                    raise ssl.SSLWantReadError("plain HTTP answered") from None
                _log_refused_handshake(log, summary, exc)
                raise

        def _answer_plain_http(self, exc: ssl.SSLError) -> bool:
            outgoing = self._framework_outgoing
            if outgoing is None:
                return False
            outgoing.write(PLAIN_HTTP_ANSWER)
            self._framework_failed = exc
            return True

    return ReportingSSLObject


def _log_refused_handshake(log: logging.Logger, summary: _Summary, exc: ssl.SSLError) -> None:
    reason = exc.reason or ""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message
        log.warning("TLS handshake refused: client certificate verify failed: %s", message)
    elif reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        log.warning("TLS handshake refused: client certificate required (the client sent none)")
    else:
        log.debug("TLS handshake failed: %s", reason or exc)
        if reason and reason not in _GARBAGE:
            summary.add(reason.lower().replace("_", " "), _HINTS.get(reason))


def report_refused_handshakes(context: ssl.SSLContext, log: logging.Logger) -> None:
    """Report the handshakes ``context`` refuses to ``log``, and answer plain HTTP with 400.

    See the module's docstring for what is logged at which level; each call (each server)
    counts its own failures. Leaves a context whose ``sslobject_class`` was already replaced
    as it is.
    """
    if context.sslobject_class is ssl.SSLObject:
        context.sslobject_class = _reporting_class(log)
