"""The certificate authority: a CA kept in a directory, its policy, and what it issues.

What it hands over (``IssuedCertificate``, PKCS#12 bundles) is in ``issued``.

Owns every decision a CA makes: which names it may certify (its policy and the name
constraint it carries), which extensions a certificate gets, lifetimes, serials, and
intermediates. Keys and files come from ``keys``, names from ``hostnames``; it verifies
nothing beyond a loaded key matching its certificate (``verify``), and knows nothing of TLS.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import CertificateError, PKIError, PolicyError, SigningRequestError
from ..limits import (
    BACKDATE_SECONDS,
    INTERMEDIATE_CA_DAYS,
    LEAF_DAYS,
    LEAF_DAYS_MAX,
    LEAF_DAYS_WARN,
    ROOT_CA_DAYS,
)
from .hostnames import (
    IPNetwork,
    common_name,
    dns_permitted,
    name_constraints,
    parse_hosts,
    parse_permitted,
    subject_for,
)
from .issued import IssuedCertificate
from .keys import (
    KeyType,
    PrivateKey,
    as_utc,
    certificates_pem,
    describe_key,
    generate_private_key,
    load_certificates,
    load_private_key,
    signature_hash,
    write_file,
    write_private_key,
)
from .verify import check_key_matches

__all__ = ["CertificateAuthority"]

# The PKI's one logger, whichever of its modules speaks (the ``certs`` command shows it).
logger = logging.getLogger("framework.pki")


def _key_id(cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            cert.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


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
        permitted_ips: Sequence[IPNetwork] = (),
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
        name = common_name(self.certificate)
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
        dns, ips = parse_permitted(permitted_dns, permitted_ips)
        if parent is not None:
            dns, ips = parent._narrow(dns, ips)
        if days is None:
            days = INTERMEDIATE_CA_DAYS if parent else ROOT_CA_DAYS
        if days < 1:
            raise ValueError(f"days must be at least 1, not {days}")
        if name is None:
            name = f"{common_name(parent.certificate)} intermediate" if parent else "framework CA"
        if parent is not None and name in {
            common_name(c) for c in (parent.certificate, *parent.chain)
        }:
            raise ValueError(f"CA name {name!r} is taken by its parent; choose another name")

        key = generate_private_key(key_type)
        now = as_utc(now)
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
            builder = builder.add_extension(name_constraints(dns, ips), critical=True)
        signer = parent._key if parent else key
        certificate = builder.sign(signer, signature_hash(signer))
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
        ips: list[IPNetwork] = []
        if (directory / "policy.json").exists():
            try:
                policy = json.loads((directory / "policy.json").read_text())
                dns, ips = parse_permitted(policy.get("dns", ()), policy.get("ips", ()))
            except (OSError, ValueError, AttributeError) as exc:
                raise CertificateError(f"{directory / 'policy.json'} is damaged: {exc}") from exc
        return cls(directory, certificate, key, chain, root, dns, ips)

    def _narrow(self, dns: list[str], ips: list[IPNetwork]) -> tuple[list[str], list[IPNetwork]]:
        if _path_length(self.certificate) == 0:
            raise PolicyError(
                f"CA {common_name(self.certificate)!r} may not sign other CAs (its "
                "pathLenConstraint is 0); sign the new CA with the root"
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
                dns_permitted(bare, self.permitted_dns)
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
            allowed = dns_permitted(name.value.lower(), self.permitted_dns)
        else:
            address = name.value
            allowed = any(
                address.version == net.version and address in net for net in self.permitted_ips
            )
        if not allowed:
            permitted = ", ".join([*self.permitted_dns, *map(str, self.permitted_ips)])
            raise PolicyError(
                f"CA {common_name(self.certificate)!r} refuses {name.value}: it may only certify "
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
        now = as_utc(now)
        not_after = now + dt.timedelta(days=days)
        if not_after > self.certificate.not_valid_after_utc:
            # Nothing checks that a leaf ends before its CA, but it is dead once the CA is.
            logger.warning(
                "the CA expires first; the certificate ends with it on %s",
                self.certificate.not_valid_after_utc.date(),
            )
            not_after = self.certificate.not_valid_after_utc
        subject = subject_for(names)
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
            .sign(self._key, signature_hash(self._key))
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


def _policy_json(dns: Sequence[str], ips: Sequence[IPNetwork]) -> bytes:
    return (json.dumps({"dns": list(dns), "ips": [str(n) for n in ips]}, indent=2) + "\n").encode()
