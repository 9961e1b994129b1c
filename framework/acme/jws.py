"""JSON Web Signatures for ACME (RFC 7515, RFC 8555 section 6.2): ES256 with an account key."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = ["b64url", "jwk", "key_authorization", "sign", "thumbprint"]


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"ACME account keys here are ECDSA P-256 (ES256), not {key.curve.name}")


def jwk(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key (RFC 7518 section 6.2.1)."""
    _check(key)
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    numbers = public.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """The JWK thumbprint (RFC 7638): SHA-256 of the required members, sorted, no spaces."""
    canonical = json.dumps(jwk(key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def key_authorization(token: str, key: ec.EllipticCurvePrivateKey) -> str:
    """``token.thumbprint``: what an http-01 challenge serves (RFC 8555 section 8.1)."""
    return f"{token}.{thumbprint(key)}"


def sign(
    key: ec.EllipticCurvePrivateKey,
    url: str,
    payload: Any,
    *,
    nonce: str | None,
    kid: str | None = None,
) -> bytes:
    """A flattened JWS (RFC 8555 section 6.2) of ``payload`` for ``url``, as JSON bytes.

    ``payload`` ``None`` is POST-as-GET (an empty payload); with ``kid`` the header names the
    account, else it carries the public ``jwk`` (new account, revocation by key).
    """
    _check(key)
    protected: dict[str, Any] = {"alg": "ES256", "url": url}
    if nonce is not None:
        protected["nonce"] = nonce
    if kid is not None:
        protected["kid"] = kid
    else:
        protected["jwk"] = jwk(key)
    header = b64url(json.dumps(protected, separators=(",", ":")).encode())
    body = "" if payload is None else b64url(json.dumps(payload, separators=(",", ":")).encode())
    der = key.sign(f"{header}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS wants R || S, each a fixed 32 bytes (RFC 7518 section 3.4), not DER.
    signature = b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return json.dumps({"protected": header, "payload": body, "signature": signature}).encode()
