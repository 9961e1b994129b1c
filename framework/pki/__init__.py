"""The PKI in one namespace: keys, signing requests, the CA, issuance and verification.

The rest of the package and its users import these names from here; they live in
``keys`` (keys, files, signing requests), ``hostnames`` (names and name policy), ``ca`` (the
certificate authority), ``issued`` (what it hands over), ``verify`` (why a chain does or does
not verify), ``revocation`` (revoked serials and CRLs) and ``devca`` (the development CA).
All of it is ``cryptography`` alone: no HTTP, sockets, ``ssl`` or asyncio.
"""

from __future__ import annotations

from .ca import CertificateAuthority
from .devca import DevCertificate, dev_certificate
from .hostnames import parse_hosts, subject_names
from .issued import IssuedCertificate, to_pkcs12
from .keys import (
    KEY_TYPES,
    KeyType,
    PrivateKey,
    certificates_pem,
    describe_key,
    framework_home,
    generate_private_key,
    load_certificates,
    load_private_key,
    load_signing_request,
    make_signing_request,
    private_key_pem,
    write_file,
    write_private_key,
)
from .revocation import make_crl, parse_serial, revoke, revoked_serials
from .verify import check_key_matches, check_server_files, verify_certificate

__all__ = [
    "KEY_TYPES",
    "CertificateAuthority",
    "DevCertificate",
    "IssuedCertificate",
    "KeyType",
    "PrivateKey",
    "certificates_pem",
    "check_key_matches",
    "check_server_files",
    "describe_key",
    "dev_certificate",
    "framework_home",
    "generate_private_key",
    "load_certificates",
    "load_private_key",
    "load_signing_request",
    "make_crl",
    "make_signing_request",
    "parse_serial",
    "parse_hosts",
    "private_key_pem",
    "revoke",
    "revoked_serials",
    "subject_names",
    "to_pkcs12",
    "verify_certificate",
    "write_file",
    "write_private_key",
]
