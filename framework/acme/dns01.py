"""The DNS-01 answer (RFC 8555 section 8.4) through a DNS provider the user supplies.

DNS-01 is the only challenge a CA accepts for a wildcard name (``*.example.com``). The
framework computes the TXT record; a ``DnsProvider`` (a small class of the user's, over their
DNS host's API) puts it in place and takes it out again.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from .jws import b64url

__all__ = ["DnsProvider", "txt_record"]


@runtime_checkable
class DnsProvider(Protocol):
    """Sets and removes TXT records; both are awaited, errors abort the order."""

    async def set_txt(self, name: str, value: str) -> None:
        """Publish the TXT record ``value`` at ``name`` (``_acme-challenge.example.com``).

        Return once the record is visible to the CA (the provider knows its propagation).
        """

    async def remove_txt(self, name: str, value: str) -> None:
        """Take the TXT record ``value`` at ``name`` out again."""


def txt_record(domain: str, key_authorization: str) -> tuple[str, str]:
    """The record name and value answering a DNS-01 challenge for ``domain``.

    A wildcard's record is that of its base name (``*.example.com`` → ``example.com``).
    """
    base = domain.removeprefix("*.").rstrip(".")
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    return f"_acme-challenge.{base}", b64url(digest)
