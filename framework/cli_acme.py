"""The ``serve`` flags of automatic HTTPS (``--acme NAME`` and its settings), ``certs acme``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from . import pki
from .acme import (
    LETS_ENCRYPT,
    LETS_ENCRYPT_STAGING,
    AcmeService,
    AcmeSettings,
    StoredCertificate,
)
from .acme.jws import thumbprint
from .errors import FrameworkError

__all__ = [
    "acme_for_workers",
    "acme_from_args",
    "add_acme_flags",
    "register_certs_acme",
    "workers_argv",
]


def add_acme_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--acme`` and the ``--acme-*`` flags to the ``serve`` parser."""
    group = parser.add_argument_group("automatic HTTPS (ACME)")
    group.add_argument(
        "--acme",
        metavar="NAME",
        action="append",
        default=[],
        help="get the certificate for NAME from an ACME CA (Let's Encrypt) and renew it; "
        "repeat for more names on the same certificate",
    )
    group.add_argument("--acme-email", metavar="EMAIL", help="the ACME account's contact")
    group.add_argument(
        "--acme-directory",
        metavar="URL",
        help=f"the ACME CA's directory URL (default: Let's Encrypt, {LETS_ENCRYPT})",
    )
    group.add_argument(
        "--acme-staging", action="store_true", help="use Let's Encrypt's staging CA (for trials)"
    )
    group.add_argument(
        "--acme-agree-tos",
        action="store_true",
        help="agree to the ACME CA's terms of service (needed once, to create the account)",
    )
    group.add_argument(
        "--acme-ca-bundle",
        metavar="PEM",
        help="trust these CA certificates for the ACME server itself (a private CA, e.g. pebble)",
    )
    group.add_argument(
        "--acme-challenge",
        metavar="TYPE",
        action="append",
        choices=("http-01", "tls-alpn-01"),
        help="the challenge to answer: http-01 (on --acme-http-port, the default) or "
        "tls-alpn-01 (on the HTTPS port, which must then be 443 on the internet); repeat to "
        "allow both, the first preferred",
    )
    group.add_argument(
        "--acme-http-port",
        metavar="PORT",
        type=int,
        default=80,
        help="where HTTP-01 challenges are answered and plain HTTP is redirected (default 80)",
    )


def acme_from_args(args: argparse.Namespace) -> AcmeSettings | None:
    """The ``AcmeSettings`` the flags ask for, or ``None`` without ``--acme``.

    Raises:
        FrameworkError: the flags conflict or a value is unusable (one line).
    """
    if not args.acme:
        used = [
            flag
            for flag, value in (
                ("--acme-email", args.acme_email),
                ("--acme-directory", args.acme_directory),
                ("--acme-staging", args.acme_staging),
                ("--acme-agree-tos", args.acme_agree_tos),
                ("--acme-ca-bundle", args.acme_ca_bundle),
                ("--acme-challenge", args.acme_challenge),
            )
            if value
        ]
        if used:
            raise FrameworkError(f"{used[0]} needs --acme NAME, the name to get a certificate for")
        return None
    if args.acme_staging and args.acme_directory:
        raise FrameworkError("--acme-staging and --acme-directory both name the CA; pick one")
    if args.no_tls:
        raise FrameworkError("--acme gets a certificate for HTTPS; drop --no-tls")
    if not 0 <= args.acme_http_port <= 65535:
        raise FrameworkError(f"--acme-http-port must be 0-65535, not {args.acme_http_port}")
    if args.acme_ca_bundle and not Path(args.acme_ca_bundle).is_file():
        raise FrameworkError(f"--acme-ca-bundle {args.acme_ca_bundle}: no such file")
    directory = args.acme_directory or (LETS_ENCRYPT_STAGING if args.acme_staging else LETS_ENCRYPT)
    return AcmeSettings(
        domains=tuple(args.acme),
        email=args.acme_email,
        directory=directory,
        agree_tos=args.acme_agree_tos,
        ca_bundle=args.acme_ca_bundle,
        http_port=args.acme_http_port,
        challenges=tuple(args.acme_challenge or ("http-01",)),
    )


_VALUED = {
    "--acme", "--acme-email", "--acme-directory", "--acme-ca-bundle", "--acme-http-port",
    "--acme-challenge",
}  # fmt: skip
_SWITCHES = {"--acme-staging", "--acme-agree-tos"}


def workers_argv(argv: list[str], certfile: Path, keyfile: Path) -> list[str]:
    """``argv`` for the workers: the ``--acme*`` flags replaced by the certificate's files."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif arg in _SWITCHES or arg.split("=", 1)[0] in _VALUED:
            pass
        else:
            kept.append(arg)
    return [*kept, "--certfile", str(certfile), "--keyfile", str(keyfile)]


def acme_for_workers(args: argparse.Namespace, settings: AcmeSettings, argv: list[str]) -> None:
    """With ``--workers``: the supervisor does ACME, the workers serve what it stored.

    The certificate is had before any worker starts; renewal runs on an event loop in a
    thread of the supervisor, and each renewal is a SIGHUP to itself, which it forwards to
    every worker (each re-reads the files). ``args`` then names the files instead of ACME.
    """
    if "tls-alpn-01" in settings.challenges:
        raise FrameworkError(
            "--acme-challenge tls-alpn-01 needs the HTTPS port in the process that does ACME; "
            "with --workers use http-01"
        )
    loop = asyncio.new_event_loop()
    service = AcmeService(settings, host=args.host, https_port=args.port or 443)
    current = loop.run_until_complete(service.start())

    def renewed(stored: StoredCertificate) -> None:
        os.kill(os.getpid(), signal.SIGHUP)  # the supervisor forwards it to every worker

    async def watch() -> None:
        service.watch(renewed)

    loop.run_until_complete(watch())
    threading.Thread(target=loop.run_forever, name="framework-acme", daemon=True).start()
    args.certfile, args.keyfile = str(current.cert_path), str(current.key_path)
    args.argv = workers_argv(argv, current.cert_path, current.key_path)


def register_certs_acme(certs: argparse._SubParsersAction[Any]) -> None:
    """Add ``framework certs acme obtain|show`` (a certificate into files, without serving)."""
    acme = certs.add_parser(
        "acme", help="get a certificate from an ACME CA into files, or show the stored ones"
    )
    sub = acme.add_subparsers(dest="acme_command", metavar="SUBCOMMAND")
    sub.required = True
    obtain = sub.add_parser(
        "obtain",
        help="order a certificate (answering HTTP-01 on --acme-http-port) unless the stored one "
        "is still good; copy it to --cert/--key",
    )
    add_acme_flags(obtain)
    obtain.add_argument(
        "--host", default="0.0.0.0", help="address the HTTP-01 listener binds (default all)"
    )
    obtain.add_argument("--cert", metavar="PEM", help="also write the chain here")
    obtain.add_argument("--key", metavar="PEM", help="also write the key here (0600)")
    obtain.add_argument(
        "--force", action="store_true", help="order now, even if the stored one is not due"
    )
    obtain.set_defaults(func=_obtain, no_tls=False)
    show = sub.add_parser("show", help="the ACME accounts and certificates under FRAMEWORK_HOME")
    show.set_defaults(func=_show)


def _obtain(args: argparse.Namespace) -> int:
    settings = acme_from_args(args)
    if settings is None:
        raise FrameworkError("certs acme obtain needs --acme NAME, the name to certify")
    if "tls-alpn-01" in settings.challenges:
        raise FrameworkError("certs acme obtain answers http-01 only; drop --acme-challenge")
    stored = asyncio.run(_order(settings, args.host, args.force))
    for source, target, mode in (
        (stored.cert_path, args.cert, 0o644),
        (stored.key_path, args.key, 0o600),
    ):
        if target:
            pki.write_file(target, source.read_bytes(), force=True, mode=mode)
    print(
        f"certificate for {', '.join(settings.domains)} until {stored.not_after:%Y-%m-%d %H:%M} UTC"
    )
    print(f"  {stored.cert_path}\n  {stored.key_path}")
    print(
        f"renew after {stored.renew_at(settings.renew_fraction):%Y-%m-%d %H:%M} UTC "
        "(run this again then)"
    )
    return 0


async def _order(settings: AcmeSettings, host: str, force: bool) -> StoredCertificate:
    service = AcmeService(settings, host=host, https_port=443)
    try:
        if force:
            await service.start_listener()
            return await service.obtain()
        current = await service.start()
        if current.renew_at(settings.renew_fraction) > dt.datetime.now(dt.UTC):
            return current
        return await service.obtain()
    finally:
        await service.aclose()


def _show(args: argparse.Namespace) -> int:
    root = pki.framework_home() / "acme"
    directories = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if not directories:
        print(f"no ACME state under {root}")
        return 0
    for folder in directories:
        print(f"{folder}")
        key = folder / "account.key"
        if key.exists():
            account = pki.load_private_key(key)
            if isinstance(account, ec.EllipticCurvePrivateKey):
                print(f"  account key {key} (thumbprint {thumbprint(account)})")
        for cert in sorted(folder.glob("certificates/*/cert.pem")):
            chain = pki.load_certificates(cert)
            leaf = chain[0]
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = ", ".join(san.get_values_for_type(x509.DNSName))
            print(f"  {names}: until {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, {cert}")
    return 0
