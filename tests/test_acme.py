"""The ACME client's parts without a CA: JWS signing (RFC 7515/7518/8555), problem mapping."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from framework.acme import AcmeError, AcmeSettings, jws, problem_error
from framework.acme.errors import _HINTS
from framework.errors import FrameworkError

# A fixed key, so that a failure is reproducible; coordinates are checked against
# cryptography's own numbers for it.
FIXED_D = 0x8E9B109E719098BF980487DF1F5D77E9CB4D73C93B9F7773B3965320899819AE


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fixed_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(FIXED_D, ec.SECP256R1())


def test_jwk_holds_the_public_coordinates_as_32_byte_base64url() -> None:
    key = fixed_key()
    public = jws.jwk(key)
    assert set(public) == {"crv", "kty", "x", "y"}
    assert (public["crv"], public["kty"]) == ("P-256", "EC")
    assert all(len(unb64(public[c])) == 32 and "=" not in public[c] for c in "xy")
    numbers = key.public_key().public_numbers()
    assert int.from_bytes(unb64(public["x"]), "big") == numbers.x
    assert int.from_bytes(unb64(public["y"]), "big") == numbers.y


def test_thumbprint_is_sha256_of_the_sorted_required_members() -> None:
    # RFC 7638 section 3: {"crv","kty","x","y"} in that order, no whitespace.
    public = jws.jwk(fixed_key())
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{public["x"]}","y":"{public["y"]}"}}'.encode()
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical)
    assert jws.thumbprint(fixed_key()) == jws.b64url(digest.finalize())
    assert jws.key_authorization("tok", fixed_key()) == "tok." + jws.thumbprint(fixed_key())


def verify(message: dict[str, str], key: ec.EllipticCurvePrivateKey) -> None:
    raw = unb64(message["signature"])
    assert len(raw) == 64  # R || S, 32 bytes each (RFC 7518 section 3.4)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signing_input = f"{message['protected']}.{message['payload']}".encode()
    key.public_key().verify(der, signing_input, ec.ECDSA(hashes.SHA256()))


def test_sign_with_jwk_for_a_new_account() -> None:
    key = fixed_key()
    message = json.loads(
        jws.sign(key, "https://ca.test/new-acct", {"termsOfServiceAgreed": True}, nonce="n1")
    )
    protected = json.loads(unb64(message["protected"]))
    assert protected == {
        "alg": "ES256",
        "url": "https://ca.test/new-acct",
        "nonce": "n1",
        "jwk": jws.jwk(key),
    }
    assert json.loads(unb64(message["payload"])) == {"termsOfServiceAgreed": True}
    verify(message, key)


def test_sign_with_kid_and_post_as_get_has_an_empty_payload() -> None:
    key = fixed_key()
    message = json.loads(
        jws.sign(key, "https://ca.test/o/1", None, nonce="n2", kid="https://ca.test/a/7")
    )
    protected = json.loads(unb64(message["protected"]))
    assert protected["kid"] == "https://ca.test/a/7"
    assert "jwk" not in protected
    assert message["payload"] == ""
    verify(message, key)


def test_a_tampered_payload_does_not_verify() -> None:
    key = fixed_key()
    message = json.loads(jws.sign(key, "https://ca.test/x", {"a": 1}, nonce="n"))
    message["payload"] = jws.b64url(b'{"a":2}')
    with pytest.raises(InvalidSignature):
        verify(message, key)


def test_only_p256_account_keys() -> None:
    with pytest.raises(ValueError, match="P-256"):
        jws.jwk(ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize("kind", sorted(_HINTS))
def test_every_problem_type_maps_to_one_line_with_its_hint_and_detail(kind: str) -> None:
    problem = {"type": f"urn:ietf:params:acme:error:{kind}", "detail": "the CA's words"}
    error = problem_error(problem, status=400)
    assert isinstance(error, FrameworkError)
    assert error.kind == kind
    assert str(error).startswith(_HINTS[kind])
    assert "CA said: the CA's words" in str(error)
    assert "\n" not in str(error)


def test_rate_limited_names_the_retry_time_from_seconds_or_a_date() -> None:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many"}
    by_seconds = problem_error(problem, status=429, retry_after="3600", now=now)
    assert by_seconds.retry_after == now + dt.timedelta(hours=1)
    assert "retry after 2026-01-02 04:04:05 UTC" in str(by_seconds)
    by_date = problem_error(problem, retry_after="Fri, 02 Jan 2026 05:00:00 GMT", now=now)
    assert "retry after 2026-01-02 05:00:00 UTC" in str(by_date)
    assert "retry later" in str(problem_error(problem, now=now))


def test_subproblems_name_their_identifiers() -> None:
    problem: dict[str, Any] = {
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "some names refused",
        "subproblems": [
            {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "blocked by policy",
                "identifier": {"type": "dns", "value": "bad.example"},
            }
        ],
    }
    assert "bad.example: blocked by policy" in str(problem_error(problem))


def test_an_unknown_type_and_a_missing_document_still_say_something() -> None:
    assert "urn:x:other" in str(problem_error({"type": "urn:x:other"}, status=418))
    assert "418" in str(problem_error("not json", status=418))


def test_settings_refuse_addresses_and_empty_names() -> None:
    with pytest.raises(FrameworkError, match="DNS names, not addresses"):
        AcmeSettings(domains=("127.0.0.1",))
    with pytest.raises(FrameworkError, match="needs a domain name"):
        AcmeSettings(domains=())


def test_the_directory_must_be_https() -> None:
    from framework.acme import AcmeClient

    with pytest.raises(AcmeError, match="https://"):
        AcmeClient("http://127.0.0.1:1/dir", fixed_key())


def test_account_key_is_made_once_0600_and_reused(tmp_path: Path) -> None:
    from framework.acme import AcmeStorage

    storage = AcmeStorage("https://127.0.0.1:14000/dir", tmp_path)
    key = storage.account_key()
    assert storage.account_key_path.stat().st_mode & 0o777 == 0o600
    assert jws.thumbprint(storage.account_key()) == jws.thumbprint(key)


async def answer(responder: Any, target: str, host: str | None) -> Any:
    from framework.messages import Request

    return await responder(Request("GET", target, {"host": host} if host is not None else {}))


@pytest.mark.parametrize(
    ("host", "target", "location"),
    [
        ("example.test", "/a?b=1", "https://example.test/a?b=1"),
        ("example.test:80", "/", "https://example.test/"),
        ("[2001:db8::1]:80", "/x", "https://[2001:db8::1]/x"),
    ],
)
def test_http01_redirects_everything_else_to_https(host: str, target: str, location: str) -> None:
    from framework.acme import Http01Responder

    response = asyncio.run(answer(Http01Responder(443), target, host))
    assert response.status == 308
    assert response.headers["location"] == location


def test_http01_answers_a_pending_token_only() -> None:
    from framework.acme import Http01Responder

    responder = Http01Responder(8443)
    responder.add("tok-1", "tok-1.thumb")
    ok = asyncio.run(answer(responder, "/.well-known/acme-challenge/tok-1", "example.test"))
    assert (ok.status, ok.body) == (200, b"tok-1.thumb")
    missing = asyncio.run(answer(responder, "/.well-known/acme-challenge/other", "example.test"))
    assert missing.status == 404
    responder.remove("tok-1")
    gone = asyncio.run(answer(responder, "/.well-known/acme-challenge/tok-1", "example.test"))
    assert gone.status == 404
    moved = asyncio.run(answer(responder, "/p", "example.test"))
    assert moved.headers["location"] == "https://example.test:8443/p"


@pytest.mark.parametrize("host", [None, "", "evil.test/@x", "a b"])
def test_http01_refuses_a_host_it_cannot_redirect_to(host: str | None) -> None:
    from framework.acme import Http01Responder

    assert asyncio.run(answer(Http01Responder(443), "/", host)).status == 400
