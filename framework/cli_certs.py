"""The ``certs`` subcommands: make CAs, keys, requests and certificates; check and show them.

Owns argument parsing and the short human summaries; every decision about certificates is
``pki``'s. Handlers return the exit status; a user's mistake is raised as a ``FrameworkError``
with one line saying what is wrong and how to fix it, and ``cli.main`` prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import ipaddress
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from framework import pki
from framework.errors import CertificateError, FrameworkError, PKIError
from framework.limits import CRL_DAYS, DEFAULT_KEY_TYPE, DEV_RENEW_DAYS, LEAF_DAYS

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]

_KEY_HELP = f"key type: {', '.join(pki.KEY_TYPES)} (default {DEFAULT_KEY_TYPE})"


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    # pki reports soft problems (a lifetime browsers refuse) by logging; on the command line
    # they become one "warning:" line each, without a logging setup of the caller's.
    logger = logging.getLogger("framework.pki")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("framework: warning: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _command(func: Handler) -> Handler:
    """Wrap a handler: warnings to stderr, and a ValueError or OSError as a one-line error."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        with _warnings_to_stderr():
            try:
                return func(args)
            except FrameworkError:
                raise
            except ValueError as exc:
                raise PKIError(str(exc)) from exc
            except BrokenPipeError:
                raise  # our reader went away (`| head`), not a file problem: cli.main handles it
            except OSError as exc:
                raise PKIError(f"{exc.filename or 'file'}: {exc.strerror}") from exc

    return run


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"days must be a whole number, not {value!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError(f"days must be at least 1, not {days}")
    return days


def _key_type(value: str) -> pki.KeyType:
    if value not in pki.KEY_TYPES:
        raise argparse.ArgumentTypeError(
            f"key type must be one of {', '.join(pki.KEY_TYPES)}, not {value!r}"
        )
    return cast(pki.KeyType, value)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in san]


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _usage(cert: x509.Certificate) -> str:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:
            limit = "" if bc.path_length is None else f", pathlen {bc.path_length}"
            return f"CA{limit}"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return "any (no extendedKeyUsage)"
    kinds = {ExtendedKeyUsageOID.SERVER_AUTH: "server", ExtendedKeyUsageOID.CLIENT_AUTH: "client"}
    return ", ".join(kinds.get(oid, oid.dotted_string) for oid in eku)


def _constraints(cert: x509.Certificate) -> str | None:
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    return ", ".join(str(name.value) for name in nc.permitted_subtrees or ())


# --- handlers ------------------------------------------------------------------------------


@_command
def _ca(args: argparse.Namespace) -> int:
    parent = pki.CertificateAuthority.load(args.parent) if args.parent else None
    permits = args.permit or []
    dns: list[str] = []
    ips: list[str] = []
    for entry in permits:
        (ips if _is_network(entry) else dns).append(entry)
    ca = pki.CertificateAuthority.create(
        args.dir,
        name=args.name,
        days=args.days,
        parent=parent,
        key_type=args.key_type,
        permitted_dns=dns,
        permitted_ips=ips,
        force=args.force,
    )
    kind = f"intermediate CA (signed by {args.parent})" if parent else "root CA"
    print(f"made {kind} {ca.certificate.subject.rfc4514_string()} in {ca.directory}/")
    print(
        f"  {ca.directory / 'ca.pem'}  certificate, "
        f"until {ca.certificate.not_valid_after_utc:%Y-%m-%d}"
    )
    print(f"  {ca.directory / 'ca.key'}  private key (0600; keep it secret)")
    if ca.permitted_dns or ca.permitted_ips:
        names = ", ".join([*ca.permitted_dns, *map(str, ca.permitted_ips)])
        print(f"  may certify only: {names}")
    print(f'trust it: curl --cacert {ca.trust_path} ...  or  Client(ca="{ca.trust_path}")')
    return 0


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


@_command
def _request(args: argparse.Namespace) -> int:
    key_path, out = Path(args.key), Path(args.out)
    if out.exists() and not args.force:
        raise PKIError(f"{out} already exists; pass --force to replace it")
    hosts = pki.parse_hosts(args.host)  # check the names before making a key
    if key_path.exists():
        key = pki.load_private_key(key_path)
        made = f"used the key in {key_path} ({pki.describe_key(key)})"
    else:
        key = pki.generate_private_key(args.key_type or _key_type(DEFAULT_KEY_TYPE))
        pki.write_private_key(key_path, key)
        made = f"wrote {key_path} (new {pki.describe_key(key)} private key, 0600)"
    csr = pki.make_signing_request(key, [str(h.value) for h in hosts])
    pki.write_file(out, csr.public_bytes(serialization.Encoding.PEM), force=args.force)
    print(made)
    print(f"wrote {out} (signing request for {', '.join(str(h.value) for h in hosts)})")
    print(f"next: framework certs sign {out} --ca DIR --out CERT.pem")
    return 0


@_command
def _sign(args: argparse.Namespace) -> int:
    csr = pki.load_signing_request(args.csr)
    ca = pki.CertificateAuthority.load(args.ca)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise PKIError(f"{out} already exists; pass --force to replace it")
    chain = ca.sign(csr, days=args.days, client=args.client)
    pki.write_file(out, pki.certificates_pem(chain), force=args.force)
    _print_written(chain, out, None)
    return 0


@_command
def _issue(args: argparse.Namespace) -> int:
    ca = pki.CertificateAuthority.load(args.ca)
    for path in (args.out_cert, args.out_key):
        if os.path.lexists(path) and not args.force:
            raise PKIError(f"{path} already exists; pass --force to replace it")
    issued = ca.issue(args.host, days=args.days, client=args.client, key_type=args.key_type)
    issued.write(args.out_cert, args.out_key, force=args.force)
    _print_written(issued.chain, Path(args.out_cert), Path(args.out_key))
    return 0


def _print_written(chain: list[x509.Certificate], cert: Path, key: Path | None) -> None:
    leaf = chain[0]
    extra = f" + {len(chain) - 1} intermediate" if len(chain) > 1 else ""
    print(
        f"wrote {cert} ({_usage(leaf)} certificate{extra} for {', '.join(_names(leaf))}, "
        f"until {leaf.not_valid_after_utc:%Y-%m-%d})"
    )
    if key is not None:
        print(f"wrote {key} (private key, 0600)")


@_command
def _verify(args: argparse.Namespace) -> int:
    chain = pki.load_certificates(args.cert)
    trusted = pki.load_certificates(args.ca)
    try:
        pki.verify_certificate(chain, trusted, host=args.host, client=args.client)
    except CertificateError as exc:
        print(f"FAILED: {exc}")
        return 1
    print("OK")
    return 0


@_command
def _show(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    if b"CERTIFICATE REQUEST-----" in data:
        _show_request(pki.load_signing_request(args.file))
        return 0
    certificates = pki.load_certificates(args.file)
    now = dt.datetime.now(dt.UTC)
    for index, cert in enumerate(certificates, 1):
        if len(certificates) > 1:
            print(f"certificate {index} of {len(certificates)}:")
        left = cert.not_valid_after_utc - now
        print(f"  subject:  {cert.subject.rfc4514_string() or '(empty)'}")
        print(f"  names:    {', '.join(_names(cert)) or '(none)'}")
        if (constraints := _constraints(cert)) is not None:
            print(f"  permits:  {constraints or '(nothing)'}")
        print(f"  issuer:   {cert.issuer.rfc4514_string()}")
        print(
            f"  valid:    {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({left.days} days left)"
        )
        print(f"  key:      {pki.describe_key(cert.public_key())}")
        print(f"  serial:   {cert.serial_number:X}")
        print(f"  sha256:   {_fingerprint(cert)}")
        print(f"  usage:    {_usage(cert)}")
        if left.total_seconds() <= 0:
            print(f"framework: warning: {args.file} ({index}) has expired", file=sys.stderr)
        elif left.days < DEV_RENEW_DAYS:
            print(
                f"framework: warning: {args.file} ({index}) expires in {left.days} days; "
                "issue a new one",
                file=sys.stderr,
            )
    return 0


def _show_request(csr: x509.CertificateSigningRequest) -> None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ", ".join(str(n.value) for n in san)
    except x509.ExtensionNotFound:
        names = "(none)"
    print("signing request:")
    print(f"  subject:   {csr.subject.rfc4514_string() or '(empty)'}")
    print(f"  names:     {names}")
    print(f"  key:       {pki.describe_key(csr.public_key())}")
    print(f"  signature: {'valid' if csr.is_signature_valid else 'INVALID'}")


@_command
def _pkcs12(args: argparse.Namespace) -> int:
    if args.password_file:
        password = Path(args.password_file).read_bytes().rstrip(b"\r\n")
    else:
        value = os.environ.get(args.password_env)
        if value is None:
            raise PKIError(f"environment variable {args.password_env} is not set")
        password = value.encode()
    chain = pki.load_certificates(args.cert)
    key = pki.load_private_key(args.key)
    bundle = pki.to_pkcs12(chain, key, password)
    pki.write_file(args.out, bundle, force=args.force, mode=0o600)
    print(f"wrote {args.out} (PKCS#12: key + {len(chain)} certificate(s), 0600)")
    return 0


@_command
def _revoke(args: argparse.Namespace) -> int:
    ca = pki.CertificateAuthority.load(args.ca)
    serial = pki.parse_serial(args.serial)
    if pki.revoke(ca, serial):
        print(f"revoked serial {serial:X} (recorded in {ca.directory / 'revoked.txt'})")
    else:
        print(f"serial {serial:X} was revoked already")
    print(
        f"next: framework certs crl --ca {args.ca} --out crl.pem, then give crl.pem to the "
        "servers (serve --client-crl) or clients (crl=)"
    )
    return 0


@_command
def _crl(args: argparse.Namespace) -> int:
    ca = pki.CertificateAuthority.load(args.ca)
    crl = pki.make_crl(ca, days=args.days)
    pki.write_file(Path(args.out), crl.public_bytes(serialization.Encoding.PEM), force=True)
    count = len(list(crl))
    assert crl.next_update_utc is not None
    print(
        f"wrote {args.out} (CRL of {_common_name_of(ca)}, {count} revoked, next update "
        f"{crl.next_update_utc:%Y-%m-%d %H:%M} UTC: make a new one before then)"
    )
    return 0


def _common_name_of(ca: pki.CertificateAuthority) -> str:
    return ca.certificate.subject.rfc4514_string()


@_command
def _dev_ca(args: argparse.Namespace) -> int:
    dev = pki.dev_certificate()
    print(dev.ca_cert_path)
    return 0


def _trust(args: argparse.Namespace) -> int:
    from .deploy.trust import change_trust

    ca = Path(args.ca) if args.ca else pki.dev_certificate().ca_cert_path
    result = change_trust(ca, uninstall=args.uninstall or args.certs_command == "untrust")
    for line in result.done:
        print(line)
    for line in result.todo:
        print(f"to do: {line}", file=sys.stderr)
    return 0 if result.complete else 1


# --- the parser ----------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``certs`` command and its subcommands to ``subparsers``.

    Each subcommand's handler is set as ``func``; it takes the parsed arguments and returns
    the exit status.
    """
    certs = subparsers.add_parser(
        "certs",
        help="make and check keys, CAs and certificates",
        description="Make and check keys, certificate authorities and certificates.",
    )
    sub = certs.add_subparsers(dest="certs_command", metavar="SUBCOMMAND")
    sub.required = True
    from .cli_acme import register_certs_acme

    register_certs_acme(sub)

    p = sub.add_parser(
        "ca", help="make a certificate authority (a root, or with --parent one below)"
    )
    p.add_argument("--dir", required=True, help="directory to keep it in (made 0700)")
    p.add_argument("--name", help="its name (default: framework CA)")
    p.add_argument("--days", type=_days, help="lifetime (default 3650, intermediate 1825)")
    p.add_argument("--parent", metavar="DIR", help="the CA that signs this one (an intermediate)")
    p.add_argument(
        "--permit",
        action="append",
        metavar="NAME",
        help="a name it may certify (example.test, .test, 10.0.0.0/8); repeat; default any",
    )
    p.add_argument("--key-type", type=_key_type, default=DEFAULT_KEY_TYPE, help=_KEY_HELP)
    p.add_argument("--force", action="store_true", help="replace a CA already in --dir")
    p.set_defaults(func=_ca)

    p = sub.add_parser("request", help="make a key (if needed) and a signing request")
    p.add_argument("--key", required=True, help="private key file; made (0600) if missing")
    p.add_argument("--out", required=True, help="signing request file to write")
    p.add_argument("--host", action="append", required=True, help="a name to certify; repeat")
    p.add_argument("--key-type", type=_key_type, help=_KEY_HELP)
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_request)

    p = sub.add_parser("sign", help="check a signing request against a CA's policy and sign it")
    p.add_argument("csr", metavar="CSR", help="the signing request (PEM or DER)")
    p.add_argument("--ca", required=True, metavar="DIR", help="the CA's directory")
    p.add_argument("--out", required=True, help="certificate chain file to write")
    _leaf_options(p)
    p.set_defaults(func=_sign)

    p = sub.add_parser("issue", help="make a key and a certificate in one step")
    p.add_argument("--ca", required=True, metavar="DIR", help="the CA's directory")
    p.add_argument("--host", action="append", required=True, help="a name to certify; repeat")
    p.add_argument("--out-cert", required=True, help="certificate chain file to write")
    p.add_argument("--out-key", required=True, help="private key file to write (0600)")
    p.add_argument("--key-type", type=_key_type, default=DEFAULT_KEY_TYPE, help=_KEY_HELP)
    _leaf_options(p)
    p.set_defaults(func=_issue)

    p = sub.add_parser("verify", help="check a certificate as a TLS peer would; OK or FAILED")
    p.add_argument("cert", metavar="CERT", help="the certificate, then any intermediates")
    p.add_argument("--ca", required=True, metavar="CA_CERT", help="the CA certificate to trust")
    p.add_argument("--host", help="the name it must be for")
    p.add_argument("--client", action="store_true", help="check it as a client certificate")
    p.set_defaults(func=_verify)

    p = sub.add_parser("show", help="describe a certificate (or chain, or signing request)")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=_show)

    p = sub.add_parser("pkcs12", help="bundle a key and its chain as a .p12 file")
    p.add_argument("--cert", required=True, help="certificate chain, leaf first")
    p.add_argument("--key", required=True, help="its private key")
    p.add_argument("--out", required=True, help="the .p12 file to write (0600)")
    password = p.add_mutually_exclusive_group(required=True)
    password.add_argument("--password-file", help="file whose first line is the password")
    password.add_argument("--password-env", metavar="VAR", help="environment variable with it")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_pkcs12)

    p = sub.add_parser("revoke", help="record a certificate as revoked (then: certs crl)")
    p.add_argument(
        "serial", metavar="SERIAL", help="its serial (hex, as certs show prints it) or file"
    )
    p.add_argument("--ca", required=True, metavar="DIR", help="the CA's directory")
    p.set_defaults(func=_revoke)

    p = sub.add_parser("crl", help="write a CRL signed by the CA listing what it revoked")
    p.add_argument("--ca", required=True, metavar="DIR", help="the CA's directory")
    p.add_argument("--out", required=True, help="the CRL file to write (PEM); replaced")
    p.add_argument(
        "--days", type=_days, default=CRL_DAYS, help=f"until its nextUpdate (default {CRL_DAYS})"
    )
    p.set_defaults(func=_crl)

    p = sub.add_parser(
        "dev-ca", help="print the development CA's certificate path (made if needed)"
    )
    p.set_defaults(func=_dev_ca)

    for name, what in (("trust", "trust"), ("untrust", "stop trusting")):
        p = sub.add_parser(
            name,
            help=f"{what} the development CA (or --ca) in the system store and in Firefox/"
            "Chromium (NSS, with certutil), as mkcert -install does",
        )
        p.add_argument("--ca", metavar="CA.pem", help="this CA instead of the development CA")
        if name == "trust":
            p.add_argument("--uninstall", action="store_true", help="the same as certs untrust")
        else:
            p.set_defaults(uninstall=True)
        p.set_defaults(func=_trust)


def _leaf_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=_days, default=LEAF_DAYS, help=f"lifetime (default {LEAF_DAYS})")
    p.add_argument("--client", action="store_true", help="a client certificate (clientAuth)")
    p.add_argument("--force", action="store_true", help="replace output files that exist")
