"""ACME Renewal Information (RFC 9773) against a stand-in directory served by our own server.

Pebble 2.4 has no ARI; the stand-in answers the directory and the renewalInfo resource with
the windows each test sets, and records the certificate IDs it was asked about.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from framework import App, Request, Response
from framework.acme import AcmeService, AcmeSettings, StoredCertificate
from framework.acme.ari import RenewalWindow, certificate_id
from framework.testing import ThrowawayCA, serve_app

NOW = dt.datetime.now(dt.UTC)


def stand_in(window: dict[str, str] | None, asked: list[str]) -> App:
    app = App()

    @app.get("/dir")
    async def directory(request: Request) -> dict[str, Any]:
        base = f"https://127.0.0.1:{request.headers['host'].rsplit(':', 1)[1]}"
        body: dict[str, Any] = {"newNonce": f"{base}/nonce", "newAccount": f"{base}/acct"}
        if window is not None:
            body["renewalInfo"] = f"{base}/ari"
        return body

    @app.get("/ari/{cert_id}")
    async def info(request: Request, cert_id: str) -> Response:
        asked.append(cert_id)
        body = {"suggestedWindow": window, "explanationURL": "https://ca.test/why"}
        return Response(
            json.dumps(body), headers={"retry-after": "120"}, media_type="application/json"
        )

    return app


def stored(ca: ThrowawayCA) -> StoredCertificate:
    files = ca.server_certificate(("app.example.test",))
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    return StoredCertificate(
        files.cert, files.key, leaf.not_valid_before_utc, leaf.not_valid_after_utc
    )


def iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def schedule(
    window: dict[str, str] | None, tmp_path: Path
) -> tuple[dt.datetime, float, dt.datetime, list[str], x509.Certificate]:
    ca = ThrowawayCA()
    asked: list[str] = []
    try:
        current = stored(ca)
        async with serve_app(stand_in(window, asked), ca=ca) as served:
            settings = AcmeSettings(
                domains=("app.example.test",),
                directory=f"{served.url}/dir",
                ca_bundle=str(served.ca),
                storage=tmp_path,
            )
            service = AcmeService(settings, host="127.0.0.1", https_port=443)
            when, recheck = await service.renewal_time(current)
            scheduled = current.renew_at(settings.renew_fraction)
        leaf = x509.load_pem_x509_certificates(current.cert_path.read_bytes())[0]
        return when, recheck, scheduled, asked, leaf
    finally:
        ca.close()


def test_a_window_that_has_begun_means_renew_now(tmp_path: Path) -> None:
    window = {"start": iso(NOW - dt.timedelta(days=2)), "end": iso(NOW - dt.timedelta(days=1))}
    when, recheck, scheduled, asked, leaf = asyncio.run(schedule(window, tmp_path))
    assert abs((when - dt.datetime.now(dt.UTC)).total_seconds()) < 30
    assert when < scheduled
    assert recheck == 120.0  # the CA's Retry-After
    # The ID asked about: base64url(AKI keyIdentifier) "." base64url(serial DER octets).
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    (cert_id,) = asked
    key_id, serial = cert_id.split(".")
    assert unb64(key_id) == aki.key_identifier
    assert int.from_bytes(unb64(serial), "big") == leaf.serial_number
    assert unb64(serial)[0] < 0x80  # a positive DER INTEGER


def test_an_earlier_future_window_is_followed_inside_it(tmp_path: Path) -> None:
    start, end = NOW + dt.timedelta(days=3), NOW + dt.timedelta(days=4)
    window = {"start": iso(start), "end": iso(end)}
    when, _, scheduled, _, _ = asyncio.run(schedule(window, tmp_path))
    assert start - dt.timedelta(seconds=1) <= when <= end
    assert when < scheduled


def test_a_later_window_leaves_the_two_thirds_schedule(tmp_path: Path) -> None:
    far = NOW + dt.timedelta(days=3650)
    window = {"start": iso(far), "end": iso(far + dt.timedelta(days=1))}
    when, _, scheduled, asked, _ = asyncio.run(schedule(window, tmp_path))
    assert asked
    assert scheduled <= when <= scheduled + dt.timedelta(hours=1)  # jitter at most an hour


def test_no_renewal_info_in_the_directory_means_the_schedule(tmp_path: Path) -> None:
    when, recheck, scheduled, asked, _ = asyncio.run(schedule(None, tmp_path))
    assert asked == []
    assert scheduled <= when <= scheduled + dt.timedelta(hours=1)
    assert recheck == 6 * 3600.0


def test_window_parsing_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="suggestedWindow"):
        RenewalWindow.from_json({})
    with pytest.raises(ValueError, match="ends before"):
        RenewalWindow.from_json(
            {"suggestedWindow": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}}
        )


def test_certificate_id_holds_the_serial_as_a_minimal_der_integer() -> None:
    ca = ThrowawayCA()
    try:
        leaf = x509.load_pem_x509_certificates(stored(ca).cert_path.read_bytes())[0]
    finally:
        ca.close()
    raw = unb64(certificate_id(leaf).split(".")[1])
    assert int.from_bytes(raw, "big") == leaf.serial_number
    # Minimal DER INTEGER content: positive, and a leading zero only before a top bit set.
    assert raw[0] < 0x80
    assert raw[0] != 0 or raw[1] & 0x80
