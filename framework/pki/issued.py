"""What a CA hands over: ``IssuedCertificate`` (a key and its chain) and PKCS#12 bundles.

Writing the files (the key 0600, refusing to overwrite) and bundling them for tools that want
one ``.p12`` file; the decisions about what to issue are the CA's (``ca``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import PKIError
from .hostnames import common_name, subject_names
from .keys import PrivateKey, certificates_pem, private_key_pem, write_file, write_private_key
from .verify import check_key_matches

__all__ = ["IssuedCertificate", "to_pkcs12"]


@dataclass(frozen=True, repr=False)
class IssuedCertificate:
    """A private key and its certificate chain (leaf first), as ``CertificateAuthority.issue``
    returns them.

    Attributes:
        private_key: the leaf's key.
        chain: the leaf certificate, then the intermediates up to and excluding the root.
    """

    private_key: PrivateKey
    chain: list[x509.Certificate]

    def __repr__(self) -> str:
        leaf = self.chain[0]
        names = ", ".join(subject_names(leaf)) or common_name(leaf)
        return f"<IssuedCertificate {names} until {leaf.not_valid_after_utc.date()}>"

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return self.chain[0]

    @property
    def cert_pem(self) -> bytes:
        """The chain as PEM, leaf first: the server's certificate file."""
        return certificates_pem(self.chain)

    @property
    def private_key_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM."""
        return private_key_pem(self.private_key)

    def write(
        self,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        *,
        force: bool = False,
    ) -> None:
        """Write the chain (0644) and the key (0600); refuse to replace either unless ``force``.

        Raises:
            PKIError: a file exists and ``force`` is false (then neither is written).
        """
        if not force:
            for path in (cert_path, key_path):
                if os.path.lexists(path):
                    raise PKIError(f"{path} already exists; pass --force to replace it")
        write_private_key(key_path, self.private_key, force=force)
        write_file(cert_path, self.cert_pem, force=force)


def to_pkcs12(
    issued_or_chain: IssuedCertificate | Sequence[x509.Certificate],
    key: PrivateKey | None,
    password: bytes,
) -> bytes:
    """Bundle a key and its chain as a password-protected PKCS#12 file (``.p12``/``.pfx``).

    Args:
        issued_or_chain: an ``IssuedCertificate`` (then ``key`` may be None), or the chain,
            leaf first.
        key: the leaf's private key.
        password: the bundle's password; required, since the bundle holds the key.

    Raises:
        ValueError: ``password`` is empty or no key was given.
        CertificateError: the key does not match the leaf.
    """
    if not password:
        raise ValueError("a PKCS#12 bundle needs a password; give one (--password-file)")
    if isinstance(issued_or_chain, IssuedCertificate):
        key = key or issued_or_chain.private_key
        chain = issued_or_chain.chain
    else:
        chain = list(issued_or_chain)
    if key is None or not chain:
        raise ValueError("to_pkcs12 needs a key and at least one certificate")
    check_key_matches(chain[0], key)
    return pkcs12.serialize_key_and_certificates(
        common_name(chain[0]).encode(),
        key,
        chain[0],
        chain[1:] or None,
        serialization.BestAvailableEncryption(password),
    )
