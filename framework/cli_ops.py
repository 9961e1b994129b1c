"""The ``serve`` flags for operations: the access-log format, a logging file, trusted proxies.

Kept beside ``cli.py`` so the flags and their checks stay in one place; ``cli.py`` adds them to
``serve`` and passes what they say on.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_ops_flags", "ops_config"]


def _allow_ips(value: str) -> str:
    from .server.proxy import ForwardedAllow

    try:
        return ForwardedAllow(value).spec if value.strip() != "*" else "*"
    except ValueError as exc:
        # argparse names the flag already: the message goes on from the colon.
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


def add_ops_flags(serve: argparse.ArgumentParser) -> None:
    """Add ``--access-log-format``, ``--log-config`` and ``--forwarded-allow-ips`` to ``serve``."""
    from .server.proxy import LOOPBACK

    serve.add_argument(
        "--access-log-format",
        choices=("text", "json"),
        default="text",
        help="access lines as text (default) or one JSON object a line, for log pipelines",
    )
    serve.add_argument(
        "--log-config",
        metavar="FILE",
        help="configure logging from FILE: JSON for logging.config.dictConfig, else INI for "
        "fileConfig; its handlers and levels replace the default ones",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        type=_allow_ips,
        default=os.environ.get("FORWARDED_ALLOW_IPS", LOOPBACK),
        help="proxies whose X-Forwarded-For/-Proto and Forwarded headers name the client and "
        "scheme: addresses or CIDRs separated by commas, * for all, '' for none (default: "
        "$FORWARDED_ALLOW_IPS, else loopback)",
    )


def ops_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``ServerConfig`` fields the operations flags set."""
    return {
        "access_log_format": args.access_log_format,
        "forwarded_allow_ips": _allow_ips(args.forwarded_allow_ips),
    }
