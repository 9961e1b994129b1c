"""Proxy headers: the real client and scheme of a request that came through a trusted proxy.

Only a peer named by ``forwarded_allow_ips`` (loopback by default, as uvicorn) is believed
when it says ``X-Forwarded-For``, ``X-Forwarded-Proto`` or RFC 7239 ``Forwarded``; from any
other peer those headers are left for the handler to read and change nothing.

The address lists are read from the right, the hop nearest to us first, as each proxy appends
the address of whoever connected to it: the client is the first address that is not itself a
trusted proxy. A client can write anything to the left of what its proxy appends, so nothing
it wrote is believed while a proxy it could not fool stands to the right of it. Values that
are no IP address (garbage, ``unknown``, an obfuscated name) end the walk; the client is then
the last trusted hop. When a request carries both ``Forwarded`` and ``X-Forwarded-For`` and
they name different clients, one was written by the client and passed along unchecked by a
proxy that only sets the other: neither is believed, and the peer stays the client.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

__all__ = ["LOOPBACK", "ForwardedAllow", "MAX_HOPS"]

#: The default: only proxies on this machine are trusted.
LOOPBACK = "127.0.0.0/8,::1"
#: The most hops read from the right of one list; a longer chain ends at the last of these.
MAX_HOPS = 32
_SCHEMES = {"http": "http", "https": "https"}
_NAMES = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"})

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7239 4: forwarded-pair = token "=" value; value = token / quoted-string.
_PAIR = re.compile(
    r'[ \t]*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\[\t\x20-\x7e\x80-\xff])*"'
    r"|[!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]*)[ \t]*([;,]|$)"
)
_UNQUOTE = re.compile(r"\\(.)")


class ForwardedAllow:
    """The peers whose proxy headers are believed.

    Args:
        spec: ``"*"`` (every peer), ``""`` (none), or addresses and networks separated by
            commas (``"10.0.0.0/8, 192.168.1.2, ::1"``); also an iterable of them.

    Raises:
        ValueError: an entry is no IP address or network; the message names it.
    """

    __slots__ = ("spec", "all", "_networks", "_known")

    def __init__(self, spec: str | Iterable[str] = LOOPBACK) -> None:
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        entries = [entry.strip() for entry in entries if entry.strip()]
        self.spec = ",".join(entries)
        self.all = "*" in entries
        networks: list[_Network] = []
        for entry in entries:
            if entry == "*":
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {entry!r} is no IP address or network; give "
                    "addresses or CIDR networks separated by commas (10.0.0.0/8,::1), or * "
                    "for every peer"
                ) from None
        self._networks = tuple(networks)
        self._known: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"ForwardedAllow({self.spec!r})"

    def trusts(self, host: str) -> bool:
        """True when the peer at ``host`` (an IP address as text) may set proxy headers."""
        if self.all:
            return True
        known = self._known.get(host)
        if known is None:
            address = _address(host)
            known = address is not None and any(address in net for net in self._networks)
            if len(self._known) >= 4096:  # a bound: peers are many, the set stays small
                self._known.clear()
            self._known[host] = known
        return known

    def resolve(
        self, peer: tuple[str, int] | None, headers: list[tuple[bytes, bytes]], scheme: str
    ) -> tuple[tuple[str, int] | None, str]:
        """The client and scheme that ``headers`` from the trusted ``peer`` report.

        Returns ``(peer, scheme)`` unchanged when the headers say nothing believable.
        """
        for name, _ in headers:
            if name in _NAMES:
                break
        else:  # the common case, every request from a local client: nothing to read
            return peer, scheme
        xff: list[bytes] = []
        xfp: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"x-forwarded-proto":
                xfp.append(value)
            elif name == b"forwarded":
                forwarded.append(value)
        client, proto = peer, None
        if forwarded:
            elements = _forwarded_elements(b",".join(forwarded))
            if elements:
                hops = [element.get("for", "") for element in elements]
                client, index = self._walk(peer, hops)
                if index is not None:
                    proto = elements[index].get("proto")
                elif elements:
                    proto = elements[-1].get("proto")
        if xff:
            hops = _split(xff)
            by_xff, index = self._walk(peer, hops)
            if forwarded and by_xff != client:
                return peer, scheme  # two stories: one of them is the client's own
            client = by_xff
            if proto is None and xfp:
                protos = _split(xfp) or [""]
                proto = protos[index] if index is not None and len(protos) == len(hops) else None
                proto = proto or protos[-1]
        elif proto is None and xfp:
            proto = (_split(xfp) or [""])[-1]
        if proto is not None:
            scheme = _SCHEMES.get(proto.lower(), scheme)
        return client, scheme

    def _walk(
        self, peer: tuple[str, int] | None, hops: list[str]
    ) -> tuple[tuple[str, int] | None, int | None]:
        """The client the hops name, reading from the right, and its index (``None``: the peer)."""
        client, index = peer, None
        start = len(hops) - 1
        for i in range(start, max(start - MAX_HOPS, -1), -1):
            found = _host_port(hops[i])
            if found is None:
                break
            client, index = found, i
            if not self.trusts(found[0]):
                break
        return client, index


def _address(host: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _split(values: list[bytes]) -> list[str]:
    """The comma-separated items of a header's values, in order, the last ``MAX_HOPS``."""
    joined = b",".join(values)
    cut = len(joined) > MAX_HOPS * 64
    items = [item.strip() for item in joined[-(MAX_HOPS * 64) :].decode("latin-1").split(",")]
    # A cut leaves a piece of an item first ("2.3.4.5" of "112.3.4.5"): it is dropped.
    return items[1:][-MAX_HOPS:] if cut else items[-MAX_HOPS:]


# A proxy sends the same few addresses again and again: parsing one costs microseconds.
@functools.lru_cache(maxsize=4096)
def _host_port(value: str) -> tuple[str, int] | None:
    """``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80`` as (address, port); else ``None``."""
    port = 0
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not (rest.startswith(":") and rest[1:].isdigit() and len(rest) <= 6):
                return None
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        if not (text.isdigit() and len(text) <= 5):
            return None
        port = int(text)
    else:
        host = value
    address = _address(host)
    if address is None or port > 65535:
        return None
    return str(address), port


def _forwarded_elements(value: bytes) -> list[dict[str, str]]:
    """RFC 7239 elements (``for=…;proto=…``), the last ``MAX_HOPS``; ``[]`` when malformed."""
    text = value.decode("latin-1")
    if len(text) > MAX_HOPS * 256:
        return []  # longer than any honest chain: believe none of it
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    position = 0
    while position < len(text):
        if text[position] in ", \t" and not current:
            position += 1  # empty list items (RFC 9110 5.6.1)
            continue
        match = _PAIR.match(text, position)
        if match is None or match.end() == position:
            return []
        name, raw, separator = match.groups()
        if raw.startswith('"'):
            raw = _UNQUOTE.sub(r"\1", raw[1:-1])
        current[name.lower()] = raw
        position = match.end()
        if separator != ";":
            elements.append(current)
            current = {}
    if current:
        elements.append(current)
    return elements[-MAX_HOPS:]
