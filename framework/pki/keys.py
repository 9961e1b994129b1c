"""Keys, the files that hold them and certificates, and signing requests.

Owns how keys are made and named, how key material is encoded, loaded and written (a key file
is 0600 from the moment it exists; nothing is half-written), and how a server asks for a
certificate. Knows nothing of CAs, issuance policy or verification (``ca``, ``verify``); host
names are ``hostnames``'s.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, get_args

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..errors import CertificateError, PKIError, SigningRequestError
from .hostnames import parse_hosts, subject_for

__all__ = [
    "KEY_TYPES",
    "KeyType",
    "PrivateKey",
    "as_utc",
    "certificates_pem",
    "describe_key",
    "framework_home",
    "generate_private_key",
    "load_certificates",
    "load_private_key",
    "load_signing_request",
    "make_signing_request",
    "private_key_pem",
    "signature_hash",
    "write_file",
    "write_private_key",
]

KeyType = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}


def framework_home() -> Path:
    """Return where the package keeps its own state (the development CA).

    ``$FRAMEWORK_HOME`` when set, else ``$XDG_DATA_HOME/framework``, else
    ``~/.local/share/framework``.
    """
    if home := os.environ.get("FRAMEWORK_HOME"):
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "framework"


def as_utc(now: dt.datetime | None) -> dt.datetime:
    """``now`` as an aware UTC time (naive times are taken as UTC); the current time for None."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


# --- keys and files ----------------------------------------------------------------------


def generate_private_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    """Make a new private key.

    Args:
        key_type: one of ``KEY_TYPES``; ECDSA P-256 is the fastest to handshake and is
            accepted everywhere, RSA is for old clients.

    Raises:
        ValueError: ``key_type`` is not one of ``KEY_TYPES``.
    """
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def describe_key(key: object) -> str:
    """Name a public or private key the way ``KEY_TYPES`` does (``"ec-p256"``, ``"rsa-2048"``)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}.get(
            key.curve.name, f"ec-{key.curve.name}"
        )
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    name = type(key).__name__.lower().lstrip("_")
    return name.removesuffix("publickey").removesuffix("privatekey") or name


def private_key_pem(key: PrivateKey) -> bytes:
    """Encode ``key`` as unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificates_pem(certificates: Iterable[x509.Certificate]) -> bytes:
    """Concatenate certificates as PEM, in the order given (a server's chain: leaf first)."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def write_file(
    path: str | os.PathLike[str], data: bytes, *, force: bool = False, mode: int = 0o644
) -> Path:
    """Write ``data`` to a new file created with ``mode``; refuse to replace one unless ``force``.

    The file never exists with wider permissions than ``mode``: it is created with them (the
    umask can only narrow them) rather than written and then chmod'ed. With ``force`` the data
    goes to a new file in the same directory that then replaces ``path`` atomically, so a
    reader sees the old file or the new one, never half of one.

    Raises:
        PKIError: ``path`` exists and ``force`` is false, or it cannot be written.
    """
    path = Path(path)
    target = path
    if force:
        target = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: fail rather than follow a symlink or truncate a file someone else made.
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        raise PKIError(f"{path} already exists; pass --force to replace it") from None
    except OSError as exc:
        raise PKIError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if force:
            os.replace(target, path)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise PKIError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def write_private_key(
    path: str | os.PathLike[str], key: PrivateKey, *, force: bool = False
) -> Path:
    """Write ``key`` as PKCS#8 PEM to a file that is 0600 from the moment it exists.

    Raises:
        PKIError: ``path`` exists and ``force`` is false, or it cannot be written.
    """
    return write_file(path, private_key_pem(key), force=force, mode=0o600)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {path}: {exc.strerror}") from exc


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load an unencrypted EC or RSA private key from a PEM (or DER) file.

    Raises:
        CertificateError: the file is unreadable, encrypted, or not an EC/RSA private key.
    """
    data = _read(path, "key file")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise CertificateError(
            f"{path} is an encrypted key; decrypt it (openssl pkey -in {path} -out plain.key)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"{path} holds a {describe_key(key)} key; use an EC or RSA key")
    return key


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Load every certificate of a PEM file (or the one of a DER file), in file order.

    Raises:
        CertificateError: the file is unreadable or holds no certificate.
    """
    data = _read(path, "certificate file")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateError(f"{path} holds no certificate (expected PEM): {exc}") from exc


def load_signing_request(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    """Load a certificate signing request from a PEM or DER file.

    Raises:
        SigningRequestError: the file is unreadable or not a signing request.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningRequestError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise SigningRequestError(f"{path} is not a certificate signing request: {exc}") from exc


# --- signing requests --------------------------------------------------------------------


def make_signing_request(key: PrivateKey, hosts: Sequence[str]) -> x509.CertificateSigningRequest:
    """Make a signing request for ``hosts`` (DNS names and IP literals), signed by ``key``.

    The names go in a subjectAltName extension; the first one is also the subject's CN.

    Raises:
        ValueError: a host is not a DNS name or IP address.
    """
    names = parse_hosts(hosts)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_for(names))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, signature_hash(key))


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash ``key`` signs with."""
    # P-384 keys are paired with SHA-384 (RFC 5480 section 4); everything else with SHA-256.
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()
