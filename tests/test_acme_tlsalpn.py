"""TLS-ALPN-01 (RFC 8737): the challenge certificate only for clients offering acme-tls/1 alone.

It rests on ``SSLContext._msg_callback``, private in CPython: these handshakes over loopback
fail loudly if a Python version changes how it is called.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator

import pytest
from cryptography import x509

from framework import Response
from framework.acme.tlsalpn import (
    ACME_TLS_ALPN,
    ID_PE_ACME_IDENTIFIER,
    TlsAlpnResponder,
    hook_available,
    parse_client_hello,
)
from framework.messages import Request
from framework.server import Server
from framework.testing import LoopThread, ThrowawayCA
from framework.tls import CertificateStore

NAME = "app.example.test"
KEY_AUTHORIZATION = "token.thumbprint"


async def ok(request: Request) -> Response:
    return Response("ok")


@pytest.fixture
def served() -> Iterator[tuple[int, TlsAlpnResponder, ThrowawayCA]]:
    ca = ThrowawayCA()
    files = ca.server_certificate((NAME,))
    store = CertificateStore(files.cert, files.key)
    with LoopThread() as loop:
        server = Server(ok, host="127.0.0.1", port=0, ssl=store)
        loop.run(server.start())
        responder = TlsAlpnResponder(store.context)
        try:
            yield server.port, responder, ca
        finally:
            responder.close()
            loop.run(server.aclose(1.0))
            ca.close()


def handshake(port: int, alpn: list[str] | None) -> tuple[x509.Certificate, str | None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the validator checks the certificate itself, below
    if alpn:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=NAME) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der), tls.selected_alpn_protocol()


def acme_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        return None
    assert ext.critical
    return ext.value.value  # type: ignore[attr-defined, no-any-return]


def test_the_private_hook_exists() -> None:
    assert hook_available(), "ssl.SSLContext._msg_callback is gone: TLS-ALPN-01 falls back"


def test_only_an_offer_of_exactly_acme_tls_gets_the_challenge_certificate(
    served: tuple[int, TlsAlpnResponder, ThrowawayCA],
) -> None:
    port, responder, ca = served
    responder.add(NAME, KEY_AUTHORIZATION)
    cert, alpn = handshake(port, [ACME_TLS_ALPN])
    assert alpn == ACME_TLS_ALPN
    digest = hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()
    assert acme_identifier(cert) == b"\x04\x20" + digest
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [NAME]
    # Everyone else keeps the real certificate, during the challenge too.
    for offer in ([ACME_TLS_ALPN, "http/1.1"], ["http/1.1"], None):
        other, _ = handshake(port, offer)
        assert acme_identifier(other) is None, offer
        assert other.issuer != other.subject  # issued by the CA, not self-signed
    responder.remove(NAME)
    after, _ = handshake(port, [ACME_TLS_ALPN])
    assert acme_identifier(after) is None
    assert responder._context._msg_callback is None  # type: ignore[attr-defined]


def test_parse_client_hello_of_a_real_handshake() -> None:
    seen: list[tuple[str | None, list[str]]] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    from framework.acme.tlsalpn import read_client_hello_hook

    read_client_hello_hook(server_ctx, lambda conn, data: seen.append(parse_client_hello(data)))
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.set_alpn_protocols(["acme-tls/1", "h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(incoming, outgoing, server_hostname="Example.TEST")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    s_in.write(outgoing.read())
    with pytest.raises(ssl.SSLError):
        server.do_handshake()  # no certificate: the handshake fails after the ClientHello
    assert seen == [("example.test", ["acme-tls/1", "h2"])]


def test_parse_client_hello_refuses_garbage() -> None:
    assert parse_client_hello(b"") == (None, [])
    assert parse_client_hello(b"\x01\x00\x00\x05abc") == (None, [])
    assert parse_client_hello(b"\x02" + bytes(60)) == (None, [])
