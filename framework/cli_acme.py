"""The ``serve`` flags of automatic HTTPS (``--acme NAME`` and its settings)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .acme import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, AcmeSettings
from .errors import FrameworkError

__all__ = ["acme_from_args", "add_acme_flags"]


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
