"""Keys, signing requests, the certificate authority, issuance and verification.

Owns every X.509 decision the package makes: which extensions a certificate carries, which
names a CA may certify, how key files are written, and why a chain does not verify. Built on
``cryptography`` alone; it knows nothing of HTTP, sockets, ``ssl`` or asyncio (the ``tls``
module turns these files into an ``SSLContext``). The development CA lives in ``devca``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from framework.errors import CertificateError, PKIError, PolicyError, SigningRequestError
from framework.limits import (
    BACKDATE_SECONDS,
    INTERMEDIATE_CA_DAYS,
    LEAF_DAYS,
    LEAF_DAYS_MAX,
    LEAF_DAYS_WARN,
    ROOT_CA_DAYS,
)

if TYPE_CHECKING:
    from framework.devca import DevCertificate, dev_certificate

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
    "make_signing_request",
    "parse_hosts",
    "private_key_pem",
    "to_pkcs12",
    "verify_certificate",
    "write_file",
    "write_private_key",
]

logger = logging.getLogger("framework.pki")

KeyType = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]
KEY_TYPES: tuple[str, ...] = get_args(KeyType)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Host = x509.DNSName | x509.IPAddress

_CURVES: dict[str, type[ec.EllipticCurve]] = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
# A DNS label: letters, digits and inner hyphens, at most 63 characters (RFC 1123).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")


def framework_home() -> Path:
    """Return where the package keeps its own state (the development CA).

    ``$FRAMEWORK_HOME`` when set, else ``$XDG_DATA_HOME/framework``, else
    ``~/.local/share/framework``.
    """
    if home := os.environ.get("FRAMEWORK_HOME"):
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "framework"


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


# --- names -------------------------------------------------------------------------------


def _parse_host(host: str) -> Host:
    text = host.strip().rstrip(".").lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        # Certificates carry the ASCII (punycode) form of international names.
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        text = ""
    if len(text) > 253 or not _DNS_NAME.match(text):
        raise ValueError(f"{host!r} is not a DNS name or IP address (for example: example.test)")
    return x509.DNSName(text)


def parse_hosts(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """Turn host names and IP literals into subjectAltName entries, dropping duplicates.

    Example: ``parse_hosts(["Example.test", "*.example.test", "127.0.0.1", "[::1]"])``.

    Raises:
        ValueError: a host is neither a DNS name (optionally ``*.``-prefixed) nor an IP
            address, or no host was given.
    """
    if isinstance(hosts, str):
        hosts = [hosts]
    names: list[x509.GeneralName] = []
    for host in hosts:
        name = _parse_host(host)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("no host names given; name at least one (for example: localhost)")
    return names


def _name_text(name: x509.GeneralName) -> str:
    return str(name.value)


def _subject_for(names: Sequence[x509.GeneralName]) -> x509.Name:
    # Clients match host names against the subjectAltName only (RFC 6125); the CN is kept for
    # people and old tools. Longer than 64 characters it cannot be a CN at all (RFC 5280).
    text = _name_text(names[0])
    if len(text) > 64:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_signing_request(key: PrivateKey, hosts: Sequence[str]) -> x509.CertificateSigningRequest:
    """Make a signing request for ``hosts`` (DNS names and IP literals), signed by ``key``.

    The names go in a subjectAltName extension; the first one is also the subject's CN.

    Raises:
        ValueError: a host is not a DNS name or IP address.
    """
    names = parse_hosts(hosts)
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject_for(names))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, _hash_for(key))


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    # P-384 keys are paired with SHA-384 (RFC 5480 section 4); everything else with SHA-256.
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _parse_permitted(
    permitted_dns: Iterable[str], permitted_ips: Iterable[str]
) -> tuple[list[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    dns: list[str] = []
    for entry in permitted_dns:
        bare = entry.strip().lower()
        dot = "." if bare.startswith(".") else ""
        name = _parse_host(bare.lstrip("."))
        if not isinstance(name, x509.DNSName) or name.value.startswith("*"):
            raise ValueError(f"permitted name {entry!r} is not a DNS name (example.test, .test)")
        if dot + name.value not in dns:
            dns.append(dot + name.value)
    try:
        ips = [ipaddress.ip_network(entry.strip(), strict=False) for entry in permitted_ips]
    except ValueError as exc:
        raise ValueError(f"permitted address is not an IP network (10.0.0.0/8): {exc}") from exc
    return dns, ips


def _dns_permitted(name: str, permitted: Iterable[str]) -> bool:
    # "example.test" permits itself and every name below it; ".test" only the names below.
    # This is OpenSSL's reading of name constraints, which users know from their other CAs.
    for entry in permitted:
        if entry.startswith("."):
            if name.endswith(entry) and len(name) > len(entry):
                return True
        elif name == entry or name.endswith("." + entry):
            return True
    return False


def _name_constraints(
    dns: Sequence[str], ips: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> x509.NameConstraints:
    # cryptography's verifier rejects a leading dot in a dNSName constraint (RFC 5280 defines
    # none for DNS names), so ".test" goes in as "test", which also permits the bare name
    # "test"; the CA's own check above stays strict. A name form with no permitted subtree is
    # otherwise unconstrained, so the missing form is excluded outright, as the CA/Browser
    # Forum asks of technically constrained CAs.
    permitted: list[x509.GeneralName] = [
        x509.DNSName(d) for d in dict.fromkeys(d.lstrip(".") for d in dns)
    ]
    permitted += [x509.IPAddress(n) for n in ips]
    excluded: list[x509.GeneralName] = []
    if not ips:
        excluded += [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    if not dns:
        excluded.append(x509.DNSName(""))
    return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded or None)


# --- the certificate authority -----------------------------------------------------------


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


def _key_id(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            cert.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _cn(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string() or "(no subject)"


def _path_length(cert: x509.Certificate) -> int | None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return -1
    return bc.path_length if bc.ca else -1


class CertificateAuthority:
    """A CA kept in a directory, able to sign server and client certificates and other CAs.

    The directory holds ``ca.pem`` (this CA's certificate), ``ca.key`` (its key, 0600),
    ``serials.txt`` (the serial of every certificate it signed, hex, one a line), and when
    they apply ``chain.pem`` (the intermediates a server must send after its own certificate:
    this CA, then its parents, without the root), ``root.pem`` (the root to trust, for an
    intermediate) and ``policy.json`` (the names it may certify).

    Attributes:
        certificate: this CA's certificate.
        chain: the intermediate certificates above this CA, up to and excluding the root.
        root: the self-signed certificate at the top (this CA's own for a root).
        directory: where the CA is kept.
        permitted_dns: the DNS names it may certify (``".test"`` for the names below test);
            empty with ``permitted_ips`` means any name.
        permitted_ips: the IP networks it may certify.
    """

    def __init__(
        self,
        directory: Path,
        certificate: x509.Certificate,
        key: PrivateKey,
        chain: list[x509.Certificate],
        root: x509.Certificate,
        permitted_dns: Sequence[str] = (),
        permitted_ips: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
    ) -> None:
        self.directory = directory
        self.certificate = certificate
        self.chain = chain
        self.root = root
        self.permitted_dns = tuple(permitted_dns)
        self.permitted_ips = tuple(permitted_ips)
        self._key = key

    def __repr__(self) -> str:
        kind = "intermediate" if self.is_intermediate else "root"
        expires = self.certificate.not_valid_after_utc.date().isoformat()
        name = _cn(self.certificate)
        return f"<CertificateAuthority {name!r} {kind} {self.directory} until {expires}>"

    @property
    def cert_pem(self) -> bytes:
        """This CA's certificate as PEM (what clients trust, for a root)."""
        return certificates_pem([self.certificate])

    @property
    def is_intermediate(self) -> bool:
        """True when a parent CA signed this one."""
        return self.certificate is not self.root

    @property
    def trust_path(self) -> Path:
        """The file clients trust: ``ca.pem`` for a root, ``root.pem`` for an intermediate."""
        return self.directory / ("root.pem" if self.is_intermediate else "ca.pem")

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        name: str | None = None,
        days: int | None = None,
        parent: CertificateAuthority | None = None,
        key_type: KeyType = "ec-p256",
        permitted_dns: Sequence[str] = (),
        permitted_ips: Sequence[str] = (),
        force: bool = False,
        now: dt.datetime | None = None,
    ) -> CertificateAuthority:
        """Make a CA in ``directory`` (created 0700): a root, or an intermediate of ``parent``.

        Args:
            directory: where to keep it.
            name: the subject CN; ``"framework CA"`` for a root, the parent's name plus
                ``" intermediate"`` for an intermediate (two CAs with one name confuse
                chain building).
            days: lifetime; ``ROOT_CA_DAYS`` or ``INTERMEDIATE_CA_DAYS`` by default, and never
                past the parent's own expiry.
            parent: the CA that signs this one; a root when omitted.
            key_type: the CA's key type.
            permitted_dns: DNS names it may certify (``"example.test"`` means it and the names
                below it, ``".test"`` the names below test). An intermediate may narrow its
                parent's names, never widen them, and inherits them when given none.
            permitted_ips: IP networks it may certify (``"10.0.0.0/8"``).
            force: replace a CA already in ``directory``.
            now: the time to issue at (tests); the current time when omitted.

        Raises:
            PKIError: ``directory`` already holds a CA and ``force`` is false.
            PolicyError: ``parent`` may not sign CAs, or the names widen its policy.
            ValueError: a permitted name is malformed or ``days`` is not positive.
        """
        directory = Path(directory)
        if not force and any((directory / f).exists() for f in ("ca.key", "ca.pem")):
            raise PKIError(
                f"{directory} already holds a CA; pass --force to replace it (what it signed "
                "will stop verifying) or choose another directory"
            )
        dns, ips = _parse_permitted(permitted_dns, permitted_ips)
        if parent is not None:
            dns, ips = parent._narrow(dns, ips)
        if days is None:
            days = INTERMEDIATE_CA_DAYS if parent else ROOT_CA_DAYS
        if days < 1:
            raise ValueError(f"days must be at least 1, not {days}")
        if name is None:
            name = f"{_cn(parent.certificate)} intermediate" if parent else "framework CA"
        if parent is not None and name in {_cn(c) for c in (parent.certificate, *parent.chain)}:
            raise ValueError(f"CA name {name!r} is taken by its parent; choose another name")

        key = generate_private_key(key_type)
        now = _utc(now)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issuer_cert = parent.certificate if parent else None
        not_after = now + dt.timedelta(days=days)
        if issuer_cert is not None:
            not_after = min(not_after, issuer_cert.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=BACKDATE_SECONDS))
            .not_valid_after(not_after)
            # A root may sign intermediates; an intermediate only leaves (pathLen 0), which
            # keeps a stolen intermediate key from minting further CAs.
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=0 if parent else None), critical=True
            )
            .add_extension(_key_usage(ca=True, rsa_key=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if issuer_cert is not None:
            builder = builder.add_extension(_key_id(issuer_cert), critical=False)
        if dns or ips:
            # Critical, so a client that cannot enforce the constraint refuses the CA instead
            # of trusting it for every name (RFC 5280 section 4.2.1.10).
            builder = builder.add_extension(_name_constraints(dns, ips), critical=True)
        signer = parent._key if parent else key
        certificate = builder.sign(signer, _hash_for(signer))
        chain = [parent.certificate, *parent.chain] if parent and parent.is_intermediate else []
        root = parent.root if parent else certificate

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_key(directory / "ca.key", key, force=force)
        write_file(directory / "ca.pem", certificates_pem([certificate]), force=force)
        for file, content in (
            ("chain.pem", certificates_pem([certificate, *chain]) if parent else None),
            ("root.pem", certificates_pem([root]) if parent else None),
            ("policy.json", _policy_json(dns, ips) if dns or ips else None),
        ):
            if content is None:
                (directory / file).unlink(missing_ok=True)
            else:
                write_file(directory / file, content, force=True)
        ca = cls(directory, certificate, key, chain, root, dns, ips)
        if parent is not None:
            parent._record(certificate)
        return ca

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Load the CA kept in ``directory``.

        Raises:
            CertificateError: there is no CA there, or its files are damaged or mismatched.
        """
        directory = Path(directory)
        if not (directory / "ca.pem").exists():
            raise CertificateError(
                f"no CA in {directory} (no ca.pem); make one with: framework certs ca --dir "
                f"{directory}"
            )
        certificate = load_certificates(directory / "ca.pem")[0]
        key = load_private_key(directory / "ca.key")
        check_key_matches(certificate, key)
        chain: list[x509.Certificate] = []
        if (directory / "chain.pem").exists():
            chain = load_certificates(directory / "chain.pem")[1:]
        root = certificate
        if (directory / "root.pem").exists():
            root = load_certificates(directory / "root.pem")[0]
        dns: list[str] = []
        ips: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        if (directory / "policy.json").exists():
            try:
                policy = json.loads((directory / "policy.json").read_text())
                dns, ips = _parse_permitted(policy.get("dns", ()), policy.get("ips", ()))
            except (OSError, ValueError, AttributeError) as exc:
                raise CertificateError(f"{directory / 'policy.json'} is damaged: {exc}") from exc
        return cls(directory, certificate, key, chain, root, dns, ips)

    def _narrow(
        self, dns: list[str], ips: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> tuple[list[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        if _path_length(self.certificate) == 0:
            raise PolicyError(
                f"CA {_cn(self.certificate)!r} may not sign other CAs (its pathLenConstraint "
                "is 0); sign the new CA with the root"
            )
        if not (self.permitted_dns or self.permitted_ips):
            return dns, ips
        if not (dns or ips):
            return list(self.permitted_dns), list(self.permitted_ips)
        for entry in dns:
            # Covered when the parent permits the name itself (then all below it too), or,
            # for ".x" (the names below x), when the parent lists x or .x.
            bare = entry.lstrip(".")
            if not (
                _dns_permitted(bare, self.permitted_dns)
                or (entry.startswith(".") and ("." + bare) in self.permitted_dns)
                or (entry.startswith(".") and bare in self.permitted_dns)
            ):
                raise PolicyError(f"{entry} is outside the parent CA's permitted names")
        for net in ips:
            if not any(
                net.version == p.version and net.subnet_of(p)  # type: ignore[arg-type]
                for p in self.permitted_ips
            ):
                raise PolicyError(f"{net} is outside the parent CA's permitted addresses")
        return dns, ips

    def _check_name(self, name: x509.GeneralName) -> None:
        if not isinstance(name, x509.DNSName | x509.IPAddress):
            raise PolicyError(f"this CA signs DNS names and IP addresses only, not {name}")
        if not (self.permitted_dns or self.permitted_ips):
            return
        if isinstance(name, x509.DNSName):
            allowed = _dns_permitted(name.value.lower(), self.permitted_dns)
        else:
            address = name.value
            allowed = any(
                address.version == net.version and address in net for net in self.permitted_ips
            )
        if not allowed:
            permitted = ", ".join([*self.permitted_dns, *map(str, self.permitted_ips)])
            raise PolicyError(
                f"CA {_cn(self.certificate)!r} refuses {_name_text(name)}: it may only certify "
                f"{permitted}"
            )

    def _record(self, certificate: x509.Certificate) -> None:
        with open(self.directory / "serials.txt", "a", encoding="ascii") as f:
            f.write(f"{certificate.serial_number:x}\n")

    def sign(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        days: int = LEAF_DAYS,
        client: bool = False,
        now: dt.datetime | None = None,
    ) -> list[x509.Certificate]:
        """Check a signing request against this CA's policy and sign it.

        Only the request's public key and names are taken from it; every extension is this
        CA's own decision. A request without a subjectAltName has its CN taken as the name.

        Args:
            csr: the request; its signature must verify (it proves the key is held).
            days: lifetime; a warning is logged above ``LEAF_DAYS_WARN`` (browsers refuse it).
            client: issue a client certificate (clientAuth) instead of a server one.
            now: the time to issue at (tests); the current time when omitted.

        Returns:
            The new certificate followed by the intermediates between it and the root: what
            a server sends.

        Raises:
            SigningRequestError: the request's signature does not verify or it names nothing.
            PolicyError: it asks to be a CA, names a host outside the policy, has a weak key,
                or ``days`` passes ``LEAF_DAYS_MAX``.
        """
        if not csr.is_signature_valid:
            raise SigningRequestError(
                "the signing request's signature does not verify (changed after signing?); "
                "make a new request"
            )
        try:
            bc = csr.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is not None and bc.ca:
            raise PolicyError(
                "the signing request asks to be a CA (basicConstraints CA:TRUE); make CAs with "
                "framework certs ca --parent"
            )
        names = self._names_of(csr)
        for name in names:
            self._check_name(name)
        return self._issue(csr.public_key(), names, days=days, client=client, now=now)

    def _names_of(self, csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
        try:
            names = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            names = []
        if not names:
            cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            try:
                names = parse_hosts([str(cn[0].value)]) if cn else []
            except ValueError:
                names = []
        if not names:
            raise SigningRequestError(
                "the signing request names no host; make it with --host NAME (subjectAltName)"
            )
        return names

    def issue(
        self,
        hosts: Sequence[str],
        *,
        days: int = LEAF_DAYS,
        client: bool = False,
        key_type: KeyType = "ec-p256",
        now: dt.datetime | None = None,
    ) -> IssuedCertificate:
        """Make a key and a certificate for ``hosts`` in one step.

        Example: ``ca.issue(["localhost", "127.0.0.1"]).write("srv.pem", "srv.key")``.

        Raises:
            ValueError: a host is malformed.
            PolicyError: a host is outside this CA's policy, or ``days`` is too long.
        """
        names = parse_hosts(hosts)
        for name in names:
            self._check_name(name)
        key = generate_private_key(key_type)
        chain = self._issue(key.public_key(), names, days=days, client=client, now=now)
        return IssuedCertificate(private_key=key, chain=chain)

    def _issue(
        self,
        public_key: CertificatePublicKeyTypes,
        names: Sequence[x509.GeneralName],
        *,
        days: int,
        client: bool,
        now: dt.datetime | None,
    ) -> list[x509.Certificate]:
        if days < 1:
            raise ValueError(f"days must be at least 1, not {days}")
        if days > LEAF_DAYS_MAX:
            raise PolicyError(
                f"{days} days is more than this CA signs ({LEAF_DAYS_MAX}); use --days "
                f"{LEAF_DAYS} and renew"
            )
        if days > LEAF_DAYS_WARN:
            logger.warning(
                "%d days is more than browsers accept (%d); they will refuse this certificate",
                days,
                LEAF_DAYS_WARN,
            )
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise PolicyError(f"RSA key of {public_key.key_size} bits; use 2048 or more")
        elif not (
            isinstance(public_key, ec.EllipticCurvePublicKey)
            and public_key.curve.name in {"secp256r1", "secp384r1", "secp521r1"}
        ):
            raise PolicyError(f"{describe_key(public_key)} keys are not signed; use ec-p256")
        now = _utc(now)
        not_after = now + dt.timedelta(days=days)
        if not_after > self.certificate.not_valid_after_utc:
            # Nothing checks that a leaf ends before its CA, but it is dead once the CA is.
            logger.warning(
                "the CA expires first; the certificate ends with it on %s",
                self.certificate.not_valid_after_utc.date(),
            )
            not_after = self.certificate.not_valid_after_utc
        subject = _subject_for(names)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            # 159 random bits: unpredictable serials are what defeated chosen-prefix hash
            # collisions against CAs (CA/Browser Forum baseline requirement: 64 bits or more).
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=BACKDATE_SECONDS))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(ca=False, rsa_key=isinstance(public_key, rsa.RSAPublicKey)),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            # With an empty subject the names must be critical (RFC 5280 section 4.2.1.6).
            .add_extension(x509.SubjectAlternativeName(names), critical=not subject)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(_key_id(self.certificate), critical=False)
            .sign(self._key, _hash_for(self._key))
        )
        self._record(certificate)
        return [certificate, *((self.certificate, *self.chain) if self.is_intermediate else ())]


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    # A leaf signs handshakes (digitalSignature); an RSA leaf may also be used for RSA key
    # transport in TLS 1.2, which needs keyEncipherment. A CA only signs certificates and CRLs.
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _policy_json(
    dns: Sequence[str], ips: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bytes:
    return (json.dumps({"dns": list(dns), "ips": [str(n) for n in ips]}, indent=2) + "\n").encode()


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
        names = ", ".join(_names(leaf)) or _cn(leaf)
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


# --- verification ------------------------------------------------------------------------


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [_name_text(n) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]


def _host_matches(host: x509.GeneralName, names: Iterable[str]) -> bool:
    if isinstance(host, x509.IPAddress):
        return any(name == str(host.value) for name in names)
    wanted = str(host.value)
    for name in (n.lower() for n in names):
        if name == wanted:
            return True
        # A wildcard stands for exactly one whole left-most label (RFC 6125 section 6.4.3).
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_certificate(
    chain: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    *,
    host: str | None = None,
    client: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Check that ``chain`` (leaf first) leads to one of ``trusted`` and fits its use.

    The checks are the ones a TLS client makes (RFC 5280 path validation with the web PKI's
    profile, by cryptography's verifier); the common failures are found first so that the
    message says exactly what is wrong.

    Args:
        chain: the leaf, then any intermediates (the contents of a server's certificate file).
        trusted: the CA certificates to trust.
        host: the name the leaf must carry; any of its names when omitted.
        client: check for client authentication instead of server authentication.
        now: the time to check at; the current time when omitted.

    Raises:
        CertificateError: with the reason, for example ``expired on 2026-01-31 12:00 UTC``,
            ``is for a.test, b.test, not other.test``, ``issuer not trusted (...)``,
            ``not for server authentication (...)`` or ``chain broken: ...``.
    """
    if not chain:
        raise CertificateError("no certificate to verify")
    if not trusted:
        raise CertificateError("no trusted CA certificate given")
    now = _utc(now)
    leaf, intermediates = chain[0], list(chain[1:])
    for index, cert in enumerate(chain):
        what = "certificate" if index == 0 else f"intermediate {_cn(cert)!r}"
        if now > cert.not_valid_after_utc:
            raise CertificateError(f"{what} expired on {_when(cert.not_valid_after_utc)}")
        if now < cert.not_valid_before_utc:
            raise CertificateError(f"{what} is not valid until {_when(cert.not_valid_before_utc)}")
    names = _names(leaf)
    if not names:
        raise CertificateError("certificate has no subjectAltName (clients ignore the CN)")
    subject: Host = _parse_host(host) if host else _parse_host(names[0])
    if host and not _host_matches(subject, names):
        raise CertificateError(f"certificate is for {', '.join(names)}, not {host}")
    role, oid = (
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)
        if client
        else ("server", ExtendedKeyUsageOID.SERVER_AUTH)
    )
    try:
        eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = [oid]  # no extendedKeyUsage means any usage (RFC 5280 section 4.2.1.12)
    if oid not in eku:
        usages = ", ".join(getattr(u, "_name", u.dotted_string) for u in eku)
        raise CertificateError(f"not for {role} authentication (extendedKeyUsage is {usages})")
    for index in range(len(chain) - 1):
        if not _issued_by(chain[index], chain[index + 1]):
            raise CertificateError(
                f"chain broken: certificate {index + 2} ({_cn(chain[index + 1])!r}) did not "
                f"issue certificate {index + 1} ({_cn(chain[index])!r}); put each issuer "
                "right after the certificate it signed"
            )
    top = chain[-1]
    if top not in trusted and not any(_issued_by(top, ca) for ca in trusted):
        raise CertificateError(
            f"issuer not trusted ({_cn(top)!r} was signed by {top.issuer.rfc4514_string()!r}, "
            "which is not among the trusted CA certificates, nor an intermediate in the chain)"
        )

    builder = verification.PolicyBuilder().store(verification.Store(list(trusted))).time(now)
    try:
        if client:
            builder.build_client_verifier().verify(leaf, intermediates)
        else:
            builder.build_server_verifier(subject).verify(leaf, intermediates)
    except verification.VerificationError as exc:
        raise CertificateError(f"certificate rejected: {exc}") from exc


def check_key_matches(cert: x509.Certificate, key: PrivateKey) -> None:
    """Check that ``key`` is the private half of ``cert``'s public key.

    Raises:
        CertificateError: they do not belong together.
    """
    if cert.public_key() != key.public_key():
        raise CertificateError(
            f"the key does not match the certificate for {_cn(cert)!r} (was one of them "
            "remade?); use the key the signing request was made with"
        )


def check_server_files(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> list[x509.Certificate]:
    """Check a server's certificate file and key file before they are put to use.

    The certificate file must start with the server's own certificate, followed by each
    issuer in turn; the key must match the first certificate, which must be valid now.

    Returns:
        The certificates of ``cert_path``, leaf first.

    Raises:
        CertificateError: the files are unreadable or do not fit; the message names the file
            and the fix.
    """
    chain = load_certificates(cert_path)
    key = load_private_key(key_path)
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise CertificateError(
            f"{key_path} does not match the first certificate in {cert_path} ({_cn(leaf)!r}); "
            "the server's own certificate goes first, made from this key"
        )
    for index in range(len(chain) - 1):
        if not _issued_by(chain[index], chain[index + 1]):
            raise CertificateError(
                f"{cert_path}: certificate {index + 2} ({_cn(chain[index + 1])!r}) did not "
                f"issue certificate {index + 1} ({_cn(chain[index])!r}); order the file leaf "
                "first, then each issuer"
            )
    now = _utc(None)
    if now > leaf.not_valid_after_utc:
        raise CertificateError(
            f"{cert_path} expired on {_when(leaf.not_valid_after_utc)}; issue a new one "
            "(framework certs issue)"
        )
    if now < leaf.not_valid_before_utc:
        raise CertificateError(
            f"{cert_path} is not valid until {_when(leaf.not_valid_before_utc)}; check the "
            "clock of this machine and of the CA's"
        )
    return chain


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
        _cn(chain[0]).encode(),
        key,
        chain[0],
        chain[1:] or None,
        serialization.BestAvailableEncryption(password),
    )


def __getattr__(name: str) -> object:
    # The development CA lives in ``devca``, which builds on this module; it is re-exported
    # here, where the rest of the package looks for it, and imported on first use so that
    # either module can be imported first.
    if name in ("DevCertificate", "dev_certificate"):
        from framework import devca

        return getattr(devca, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
