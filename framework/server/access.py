"""What a connection tells its access-log lines: the TLS version, SNI name, client subject.

Read once per connection, on its first line, from the transport's TLS object; every line of
the connection then reuses it (``accesslog.ConnectionFields``).
"""

from __future__ import annotations

from typing import Any

from ..accesslog import PLAIN, ConnectionFields
from ..tls import tls_info

__all__ = ["connection_fields"]


def connection_fields(transport: Any) -> ConnectionFields:
    """The access-log fields of the connection on ``transport`` (``PLAIN`` without TLS)."""
    if transport is None:
        return PLAIN
    info = tls_info(transport.get_extra_info("ssl_object"))
    if info is None:
        return PLAIN
    subject = None
    if info.peer_certificate_der is not None:
        try:
            subject = info.peer_certificate.subject.rfc4514_string()
        except ValueError:  # a certificate cryptography will not read: say so, do not fail
            subject = "?"
    return ConnectionFields(info.version, info.server_name, subject)
