"""Host names as certificates carry them: parsing, matching, and the names a CA may certify.

Owns the rules for what counts as a DNS name or IP address, how a wildcard matches a host,
what a certificate's subject and subjectAltName say, and how a CA's permitted names read and
become a name constraint. Pure functions over ``cryptography``'s name types; it knows nothing
of keys, files, CAs or verification.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = [
    "Host",
    "IPNetwork",
    "common_name",
    "dns_permitted",
    "host_matches",
    "name_constraints",
    "parse_host",
    "parse_hosts",
    "parse_permitted",
    "subject_for",
    "subject_names",
]

Host = x509.DNSName | x509.IPAddress
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A DNS label: letters, digits and inner hyphens, at most 63 characters (RFC 1123).
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")


def parse_host(host: str) -> Host:
    """Turn one host name or IP literal (``"[::1]"`` too) into a subjectAltName entry.

    Raises:
        ValueError: ``host`` is neither a DNS name (optionally ``*.``-prefixed) nor an IP.
    """
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
        name = parse_host(host)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("no host names given; name at least one (for example: localhost)")
    return names


def subject_for(names: Sequence[x509.GeneralName]) -> x509.Name:
    """The subject for a certificate or request naming ``names``: the first one as its CN."""
    # Clients match host names against the subjectAltName only (RFC 6125); the CN is kept for
    # people and old tools. Longer than 64 characters it cannot be a CN at all (RFC 5280).
    text = str(names[0].value)
    if len(text) > 64:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def common_name(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """The subject's CN, or the whole subject when it has none: a name for messages."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string() or "(no subject)"


def subject_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of ``cert``'s subjectAltName, as text."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in san if isinstance(n, x509.DNSName | x509.IPAddress)]


def host_matches(host: x509.GeneralName, names: Iterable[str]) -> bool:
    """True when one of a certificate's ``names`` covers ``host`` (wildcards included)."""
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


def parse_permitted(
    permitted_dns: Iterable[str], permitted_ips: Iterable[str]
) -> tuple[list[str], list[IPNetwork]]:
    """Read a CA's permitted names (``"example.test"``, ``".test"``) and networks.

    Raises:
        ValueError: an entry is not a DNS name or an IP network.
    """
    dns: list[str] = []
    for entry in permitted_dns:
        bare = entry.strip().lower()
        dot = "." if bare.startswith(".") else ""
        name = parse_host(bare.lstrip("."))
        if not isinstance(name, x509.DNSName) or name.value.startswith("*"):
            raise ValueError(f"permitted name {entry!r} is not a DNS name (example.test, .test)")
        if dot + name.value not in dns:
            dns.append(dot + name.value)
    try:
        ips = [ipaddress.ip_network(entry.strip(), strict=False) for entry in permitted_ips]
    except ValueError as exc:
        raise ValueError(f"permitted address is not an IP network (10.0.0.0/8): {exc}") from exc
    return dns, ips


def dns_permitted(name: str, permitted: Iterable[str]) -> bool:
    """True when the DNS ``name`` falls under one of the ``permitted`` entries."""
    # "example.test" permits itself and every name below it; ".test" only the names below.
    # This is OpenSSL's reading of name constraints, which users know from their other CAs.
    for entry in permitted:
        if entry.startswith("."):
            if name.endswith(entry) and len(name) > len(entry):
                return True
        elif name == entry or name.endswith("." + entry):
            return True
    return False


def name_constraints(dns: Sequence[str], ips: Sequence[IPNetwork]) -> x509.NameConstraints:
    """The nameConstraints extension that holds a CA to ``dns`` and ``ips``."""
    # cryptography's verifier rejects a leading dot in a dNSName constraint (RFC 5280 defines
    # none for DNS names), so ".test" goes in as "test", which also permits the bare name
    # "test"; the CA's own check (``dns_permitted``) stays strict. A name form with no
    # permitted subtree is otherwise unconstrained, so the missing form is excluded outright,
    # as the CA/Browser Forum asks of technically constrained CAs.
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
