"""Proxy headers read by ``ForwardedAllow``: who is believed, and hostile values.

The headers come as the server hands them over (lowercase names, raw bytes); the end-to-end
tests over TLS, and behind a real nginx, are in ``tests/e2e/test_ops.py``.
"""

from __future__ import annotations

import pytest

from framework.server import ServerConfig
from framework.server.proxy import MAX_HOPS, ForwardedAllow

PEER = ("127.0.0.1", 40000)


def headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode("latin-1")) for name, value in pairs]


def resolve(allow: ForwardedAllow, *pairs: tuple[str, str], scheme: str = "https") -> object:
    return allow.resolve(PEER, headers(*pairs), scheme)


def test_proxy_x_forwarded_for_and_proto_from_a_trusted_peer() -> None:
    allow = ForwardedAllow()
    assert resolve(allow, ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "http")) == (
        ("203.0.113.7", 0),
        "http",
    )
    # No proxy header: the peer and the connection's scheme.
    assert resolve(allow, ("host", "localhost")) == (PEER, "https")


def test_proxy_the_client_is_the_first_untrusted_hop_from_the_right() -> None:
    allow = ForwardedAllow("127.0.0.1, 10.0.0.0/8")
    # The client wrote "6.6.6.6" itself; its proxy (10.1.1.1, trusted) appended what it saw.
    chain = ("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.1.1.1")
    assert resolve(allow, chain)[0] == ("198.51.100.2", 0)  # type: ignore[index]
    # Two headers are one list, in order.
    split = resolve(allow, ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "10.2.2.2"))
    assert split[0] == ("6.6.6.6", 0)  # type: ignore[index]


def test_proxy_rfc7239_forwarded() -> None:
    allow = ForwardedAllow()
    value = 'for="[2001:db8:cafe::17]:4711";proto=http;by=203.0.113.43, for=127.0.0.2'
    assert resolve(allow, ("forwarded", value)) == (("2001:db8:cafe::17", 4711), "http")
    assert resolve(allow, ("forwarded", "For=192.0.2.60;Proto=HTTP")) == (
        ("192.0.2.60", 0),
        "http",
    )
    # An obfuscated or unknown client: the walk ends; the last trusted hop stays the client.
    assert resolve(allow, ("forwarded", "for=_hidden, for=127.0.0.3"))[0] == ("127.0.0.3", 0)  # type: ignore[index]
    assert resolve(allow, ("forwarded", "for=unknown"))[0] == PEER  # type: ignore[index]


def test_proxy_two_stories_are_not_believed() -> None:
    # A proxy that sets only X-Forwarded-For passes a client's own Forwarded along.
    allow = ForwardedAllow()
    both = (("forwarded", "for=6.6.6.6;proto=http"), ("x-forwarded-for", "198.51.100.2"))
    assert resolve(allow, *both) == (PEER, "https")
    agree = (("forwarded", "for=198.51.100.2;proto=http"), ("x-forwarded-for", "198.51.100.2"))
    assert resolve(allow, *agree) == (("198.51.100.2", 0), "http")


@pytest.mark.parametrize(
    "pairs",
    [
        [("x-forwarded-for", "not an address")],
        [("x-forwarded-for", "999.1.1.1")],
        [("x-forwarded-for", "1.2.3.4:99999")],
        [("x-forwarded-for", "[::1")],
        [("x-forwarded-for", "\x00\xff\r")],
        [("x-forwarded-for", "")],
        [("x-forwarded-for", "," * 5000)],
        [("x-forwarded-for", "1" * 8000)],
        [("forwarded", 'for="unterminated')],
        [("forwarded", "for=1.2.3.4;;;==,")],
        [("forwarded", "=" * 8000)],
        [("forwarded", "for=" + "a" * 9000)],
        [("forwarded", "for=1.2.3.4, " * 2000)],
        [("x-forwarded-proto", "gopher")],
        [("x-forwarded-proto", "")],
        [("x-forwarded-proto", "https" * 3000)],
    ],
)
def test_proxy_hostile_values_change_nothing_and_never_raise(pairs: list[tuple[str, str]]) -> None:
    client, scheme = ForwardedAllow().resolve(PEER, headers(*pairs), "https")
    assert client == PEER  # nothing believable: the peer stays the client
    assert scheme == "https"


def test_proxy_many_hops_are_bounded() -> None:
    allow = ForwardedAllow("*")
    many = ", ".join(f"10.0.{i // 256}.{i % 256}" for i in range(5000))
    client, _ = allow.resolve(PEER, headers(("x-forwarded-for", many)), "https")
    # Everyone is trusted, so the walk goes as far as it may: MAX_HOPS from the right.
    assert client == (f"10.0.{(5000 - MAX_HOPS) // 256}.{(5000 - MAX_HOPS) % 256}", 0)
    # A list cut to its last bytes never yields a piece of an address as one.
    cut = "112.3.4.5," + "127.0.0.1," * 300 + "127.0.0.1"
    assert allow.resolve(PEER, headers(("x-forwarded-for", cut)), "https")[0] == (
        "127.0.0.1",
        0,
    )


def test_proxy_untrusted_peer_is_never_rewritten() -> None:
    allow = ForwardedAllow("10.0.0.0/8")
    assert not allow.trusts("127.0.0.1")
    assert allow.trusts("10.9.8.7")
    assert allow.trusts("::ffff:10.9.8.7")  # an IPv4 peer on a dual-stack socket
    assert not ForwardedAllow("").trusts("127.0.0.1")
    assert ForwardedAllow("*").trusts("2001:db8::1")
    assert not ForwardedAllow().trusts("garbage")


@pytest.mark.parametrize("spec", ["10.0.0.0/33", "localhost", "1.2.3.4/8/8", "**"])
def test_proxy_bad_allow_list_is_one_clear_error(spec: str) -> None:
    with pytest.raises(ValueError, match="forwarded_allow_ips: .* is no IP address or network"):
        ForwardedAllow(spec)
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        ServerConfig(forwarded_allow_ips=spec)


def test_proxy_config_takes_a_list_too() -> None:
    assert ServerConfig(forwarded_allow_ips=["10.0.0.0/8", "::1"]).forwarded_allow_ips == (
        "10.0.0.0/8,::1"
    )


def test_proxy_serve_flag_default_is_loopback_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from framework.cli import build_parser
    from framework.cli_ops import ops_config

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    args = build_parser().parse_args(["serve", "examples.hello:app"])
    assert ops_config(args)["forwarded_allow_ips"] == "127.0.0.0/8,::1"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 192.0.2.1")
    args = build_parser().parse_args(["serve", "examples.hello:app"])
    assert ops_config(args)["forwarded_allow_ips"] == "10.0.0.0/8,192.0.2.1"
    args = build_parser().parse_args(["serve", "app:app", "--forwarded-allow-ips", "*"])
    assert ops_config(args) == {"access_log_format": "text", "forwarded_allow_ips": "*"}
