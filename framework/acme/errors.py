"""ACME problem documents (RFC 8555 section 6.7) as one clear line each."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

from ..errors import FrameworkError

__all__ = ["AcmeError", "problem_error"]

_PREFIX = "urn:ietf:params:acme:error:"

# What the user can do about each kind of refusal; the CA's own detail is quoted after it.
_HINTS: dict[str, str] = {
    "rateLimited": "the CA's rate limit was reached",
    "caa": "a CAA record of the domain forbids this CA; add one naming it",
    "dns": "the CA could not resolve the name; check its A/AAAA records",
    "connection": (
        "the CA could not connect to this server to validate; check that the name points here "
        "and that the HTTP-01 port (80) is reachable from the internet"
    ),
    "unauthorized": "the CA refused the validation (the answer it fetched was not ours)",
    "incorrectResponse": "the CA fetched a wrong answer to the challenge",
    "rejectedIdentifier": "the CA will not issue for this name",
    "unsupportedIdentifier": "the CA does not issue for this kind of name",
    "malformed": "the CA says the request was malformed",
    "badNonce": "the CA refused the anti-replay nonce",
    "accountDoesNotExist": "the CA has no account for this key",
    "userActionRequired": "the CA needs you to do something first (see its instructions)",
    "externalAccountRequired": "the CA needs an external account binding",
    "badCSR": "the CA refused the signing request",
    "orderNotReady": "the order is not ready to be finalized",
    "tls": "the CA's TLS connection to this server failed during validation",
    "serverInternal": "the CA had an internal error; try again later",
    "agreementRequired": "the CA's terms of service must be agreed to (--acme-agree-tos)",
    "badSignatureAlgorithm": "the CA does not accept this account key's algorithm",
    "badPublicKey": "the CA refused the public key",
    "badRevocationReason": "the CA refused the revocation reason",
    "alreadyRevoked": "the certificate is already revoked",
    "invalidContact": "the CA refused the contact e-mail address; check --acme-email",
    "unsupportedContact": "the CA does not support this contact URL scheme; use an e-mail",
}


class AcmeError(FrameworkError):
    """A refusal from the ACME CA, or a failure talking to it, as one line.

    Attributes:
        kind: the problem type without its ``urn:ietf:params:acme:error:`` prefix (``""`` when
            the failure is not a problem document).
        retry_after: for ``rateLimited``, when the CA says to try again (UTC), if it said.
    """

    def __init__(
        self, message: str, *, kind: str = "", retry_after: dt.datetime | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def _retry_after(value: str | None, now: dt.datetime) -> dt.datetime | None:
    if not value:
        return None
    if value.strip().isdigit():
        return now + dt.timedelta(seconds=int(value.strip()))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def problem_error(
    problem: Any,
    *,
    status: int = 0,
    retry_after: str | None = None,
    now: dt.datetime | None = None,
) -> AcmeError:
    """An ``AcmeError`` for a problem document (a dict from the CA), with a hint for its type.

    Subproblems (RFC 8555 section 6.7.1) name the identifier each one is about.
    """
    if not isinstance(problem, dict):
        return AcmeError(f"the ACME CA answered {status} without a problem document")
    type_ = str(problem.get("type", ""))
    kind = type_.removeprefix(_PREFIX) if type_.startswith(_PREFIX) else type_
    detail = str(problem.get("detail", "")).strip()
    hint = _HINTS.get(kind, f"the ACME CA refused the request ({type_ or status})")
    parts = [hint]
    when = _retry_after(retry_after, now or dt.datetime.now(dt.UTC))
    if kind == "rateLimited":
        parts[0] += f"; retry after {when:%Y-%m-%d %H:%M:%S} UTC" if when else "; retry later"
    if detail:
        parts.append(f"CA said: {detail}")
    for sub in problem.get("subproblems") or ():
        if isinstance(sub, dict):
            ident = (sub.get("identifier") or {}).get("value", "?")
            parts.append(f"{ident}: {sub.get('detail', sub.get('type', ''))}")
    return AcmeError("; ".join(parts), kind=kind, retry_after=when)
