"""Checks of received message heads that h11 leaves out, applied by the driver.

Pure functions over our events: each returns nothing or raises ``RemoteProtocolError`` with
the status a server should answer. The framing checks of the hardening work (smuggling,
header counts) belong here too, next to the size check, so both parsing paths share them.
"""

from __future__ import annotations

from ..errors import RemoteProtocolError
from .events import Request, Response

__all__ = ["check_head_size", "head_size"]


def head_size(event: Request | Response) -> int:
    """The size of a message head on the wire (give or take optional whitespace)."""
    if type(event) is Request:
        size = len(event.method) + len(event.target) + 12  # "M T HTTP/1.1\r\n"
    else:
        size = len(event.reason) + 15  # type: ignore[union-attr]  # "HTTP/1.1 200 R\r\n"
    for name, value in event.headers:
        size += len(name) + len(value) + 4  # ": " and "\r\n"
    return size + 2


def check_head_size(event: Request | Response, max_size: int) -> None:
    """Refuse a head larger than ``max_size`` bytes (431).

    h11 enforces its limit only on a head still incomplete in its buffer: a larger head
    arriving whole in one read (one batch of TLS records) would pass unchecked.

    Raises:
        RemoteProtocolError: the head is too large; status hint 431.
    """
    if head_size(event) > max_size:
        raise RemoteProtocolError(f"message head larger than the {max_size} byte limit", 431)
