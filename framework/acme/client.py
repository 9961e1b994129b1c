"""An ACME client (RFC 8555) on our own HTTPS ``Client``: account, order, challenges, finalize.

It speaks the protocol only; which challenge answers and where the files go is decided by
``AcmeService`` (``service.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..client import Client
from ..errors import ClientError
from . import jws
from .ari import RenewalWindow, certificate_id
from .errors import AcmeError, problem_error

__all__ = ["LETS_ENCRYPT", "LETS_ENCRYPT_STAGING", "AcmeClient", "Order"]

log = logging.getLogger("framework.acme")

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

_BAD_NONCE_RETRIES = 10  # RFC 8555 section 6.5: retry a badNonce with the fresh nonce given
_POLL_TIMEOUT = 120.0  # how long an authorization or order may stay pending
_JOSE = {"content-type": "application/jose+json"}


@dataclass
class Order:
    """An ACME order (RFC 8555 section 7.1.3) and the URL it lives at."""

    url: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``pending``, ``ready``, ``processing``, ``valid`` or ``invalid``."""
        return str(self.body.get("status", ""))


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError:
            return None


Answer = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[bool]]


class AcmeClient:
    """One account at one ACME CA, given its directory URL and the account's P-256 key.

    Use it as ``async with AcmeClient(url, key) as acme:``; ``register()`` before anything else.

    Args:
        directory_url: the CA's directory (``LETS_ENCRYPT`` for production).
        account_key: the account's ECDSA P-256 private key.
        ca_bundle: CA certificates to trust for the ACME server itself (a private CA such as
            pebble's); the system's trust store when ``None``.
        timeout: seconds for each HTTP exchange.
    """

    def __init__(
        self,
        directory_url: str,
        account_key: ec.EllipticCurvePrivateKey,
        *,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not directory_url.startswith("https://"):
            raise AcmeError(f"the ACME directory must be an https:// URL, not {directory_url!r}")
        jws.jwk(account_key)  # refuses anything but P-256 now, not at the first request
        self.directory_url = directory_url
        self.key = account_key
        self.account_url: str | None = None
        self._http = Client(ca=ca_bundle, timeout=timeout)
        self._directory: dict[str, Any] | None = None
        self._nonces: list[str] = []

    async def __aenter__(self) -> AcmeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # --- transport -----------------------------------------------------------------------

    async def _request(self, method: str, url: str, content: bytes | None = None) -> _Reply:
        log.debug("ACME request: %s %s", method, url)
        try:
            response = await self._http.request(
                method, url, content=content, headers=_JOSE if content is not None else None
            )
        except ClientError as exc:
            raise AcmeError(f"cannot reach the ACME CA at {url}: {exc}") from exc
        headers = {k.lower(): v for k, v in response.headers.items()}
        nonce = headers.get("replay-nonce")
        if nonce:
            self._nonces.append(nonce)
        return _Reply(response.status, headers, response.content)

    async def directory(self) -> dict[str, Any]:
        """The CA's directory: its endpoint URLs and ``meta`` (terms of service)."""
        if self._directory is None:
            reply = await self._request("GET", self.directory_url)
            body = reply.json()
            if reply.status != 200 or not isinstance(body, dict) or "newNonce" not in body:
                raise AcmeError(
                    f"{self.directory_url} is not an ACME directory (status {reply.status})"
                )
            self._directory = body
        return self._directory

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        reply = await self._request("HEAD", (await self.directory())["newNonce"])
        if not self._nonces:
            raise AcmeError(f"the ACME CA gave no Replay-Nonce (status {reply.status})")
        return self._nonces.pop()

    async def post(self, url: str, payload: Any, *, use_jwk: bool = False) -> _Reply:
        """A signed POST (``payload`` ``None``: POST-as-GET); a problem document raises.

        A ``badNonce`` refusal is retried with the nonce that came with it.

        Raises:
            AcmeError: the CA refused it (one line from its problem document).
        """
        for _attempt in range(_BAD_NONCE_RETRIES):
            kid = None if use_jwk else self.account_url
            if kid is None and not use_jwk:
                raise AcmeError("register() the account before any other request")
            body = jws.sign(self.key, url, payload, nonce=await self._nonce(), kid=kid)
            reply = await self._request("POST", url, body)
            if reply.status < 400:
                return reply
            error = problem_error(
                reply.json(), status=reply.status, retry_after=reply.headers.get("retry-after")
            )
            if error.kind != "badNonce":
                raise error
            log.debug("ACME CA refused a nonce; retrying with a fresh one")
        raise error

    # --- account and orders ---------------------------------------------------------------

    async def register(self, email: str | None = None, *, agree_tos: bool = False) -> str:
        """Find or create the account of this key; returns its URL (the JWS ``kid``).

        Raises:
            AcmeError: the CA has terms of service and ``agree_tos`` is false, or it refused.
        """
        directory = await self.directory()
        terms = (directory.get("meta") or {}).get("termsOfService")
        payload: dict[str, Any] = {}
        if terms and not agree_tos:
            # Look the account up only: an existing one has agreed already.
            payload["onlyReturnExisting"] = True
        elif terms:
            payload["termsOfServiceAgreed"] = True
        if email:
            payload["contact"] = [f"mailto:{email}"]
        try:
            reply = await self.post(directory["newAccount"], payload, use_jwk=True)
        except AcmeError as exc:
            if exc.kind == "accountDoesNotExist":
                raise AcmeError(
                    f"the ACME CA's terms of service ({terms}) must be agreed to: pass "
                    "--acme-agree-tos (agree_tos=True) once you have read them",
                    kind="agreementRequired",
                ) from exc
            raise
        location = reply.headers.get("location")
        if not location:
            raise AcmeError("the ACME CA created an account but gave no Location for it")
        self.account_url = location
        return location

    async def new_order(self, names: Sequence[str]) -> Order:
        """Ask for a certificate for ``names`` (DNS names)."""
        directory = await self.directory()
        payload = {"identifiers": [{"type": "dns", "value": n} for n in names]}
        reply = await self.post(directory["newOrder"], payload)
        location = reply.headers.get("location")
        if not location:
            raise AcmeError("the ACME CA made an order but gave no Location for it")
        return Order(location, reply.json() or {})

    async def get(self, url: str) -> dict[str, Any]:
        """POST-as-GET a resource (an order, authorization or challenge) as JSON."""
        body = (await self.post(url, None)).json()
        if not isinstance(body, dict):
            raise AcmeError(f"the ACME CA's answer for {url} is not a JSON object")
        return body

    async def _poll(self, url: str, done: set[str], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + _POLL_TIMEOUT
        delay = 0.2
        while True:
            body = await self.get(url)
            status = body.get("status")
            if status in done:
                return body
            if status == "invalid":
                raise self._invalid(body, what)
            if time.monotonic() > deadline:
                raise AcmeError(f"{what} still {status} after {_POLL_TIMEOUT:.0f} s; try again")
            await asyncio.sleep(delay)  # the CA's pace: it works on the order meanwhile
            delay = min(delay * 2, 5.0)

    @staticmethod
    def _invalid(body: dict[str, Any], what: str) -> AcmeError:
        for challenge in body.get("challenges") or ():
            if isinstance(challenge, dict) and challenge.get("error"):
                error = problem_error(challenge["error"])
                ident = (body.get("identifier") or {}).get("value", "")
                return AcmeError(f"{what} for {ident} failed: {error}", kind=error.kind)
        if body.get("error"):
            error = problem_error(body["error"])
            return AcmeError(f"{what} failed: {error}", kind=error.kind)
        return AcmeError(f"{what} is invalid; the CA gave no reason")

    async def authorize(self, order: Order, answer: Answer, kinds: Sequence[str]) -> None:
        """Complete every pending authorization of ``order`` with the first usable challenge.

        ``answer(kind, challenge, authorization)`` makes the answer available (serves the
        token) and returns whether it could; the challenge is then told to the CA and polled.
        """
        for authz_url in order.body.get("authorizations", ()):
            authz = await self.get(authz_url)
            if authz.get("status") == "valid":
                continue
            ident = (authz.get("identifier") or {}).get("value", "?")
            offered = {c.get("type"): c for c in authz.get("challenges", ())}
            for kind in kinds:
                challenge = offered.get(kind)
                if challenge is not None and await answer(kind, challenge, authz):
                    break
            else:
                raise AcmeError(
                    f"no usable challenge for {ident}: the CA offers "
                    f"{', '.join(map(str, offered)) or 'none'}, this server answers "
                    f"{', '.join(kinds)}"
                )
            log.info("ACME: answering %s for %s", kind, ident)
            await self.post(challenge["url"], {})
            await self._poll(authz_url, {"valid"}, "validation")

    async def finalize(self, order: Order, csr: x509.CertificateSigningRequest) -> Order:
        """Send the signing request once the order is ready; wait for it to be valid."""
        order.body = await self._poll(order.url, {"ready", "valid"}, "the order")
        if order.status == "ready":
            der = csr.public_bytes(serialization.Encoding.DER)
            await self.post(order.body["finalize"], {"csr": jws.b64url(der)})
            order.body = await self._poll(order.url, {"valid"}, "the order")
        return order

    async def renewal_info(
        self, cert: x509.Certificate
    ) -> tuple[RenewalWindow, float | None] | None:
        """The CA's suggested renewal window (RFC 9773) and its Retry-After in seconds.

        ``None`` when the CA has no ``renewalInfo`` endpoint, or did not answer usably (the
        lifetime-based schedule applies then).
        """
        url = (await self.directory()).get("renewalInfo")
        if not isinstance(url, str):
            return None
        try:
            reply = await self._request("GET", f"{url.rstrip('/')}/{certificate_id(cert)}")
            if reply.status != 200:
                log.info("ACME: renewal information answered %s; using the schedule", reply.status)
                return None
            window = RenewalWindow.from_json(reply.json())
        except (AcmeError, ValueError) as exc:
            log.info("ACME: no usable renewal information (%s); using the schedule", exc)
            return None
        retry = reply.headers.get("retry-after", "")
        return window, float(retry) if retry.strip().isdigit() else None

    async def download(self, order: Order) -> bytes:
        """The certificate chain of a valid order (PEM, leaf first)."""
        url = order.body.get("certificate")
        if not url:
            raise AcmeError("the order is valid but names no certificate to download")
        reply = await self.post(url, None)
        if b"-----BEGIN CERTIFICATE-----" not in reply.content:
            raise AcmeError("the ACME CA's certificate download is not a PEM chain")
        return reply.content
