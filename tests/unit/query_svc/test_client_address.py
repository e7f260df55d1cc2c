"""client_address: the peer's IP, or a trusted proxy's x-forwarded-for."""

from __future__ import annotations

import pytest

from query_svc.client_address import client_address, peer_ip

pytestmark = pytest.mark.unit

LOOPBACK = ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:5555", "127.0.0.1"),
        ("ipv4:203.0.113.9:1", "203.0.113.9"),
        ("ipv6:[::1]:5555", "::1"),
        ("ipv6:[2001:db8::1]:80", "2001:db8::1"),
        ("ipv6:[fe80::1%eth0]:80", "fe80::1"),
        ("unix:/tmp/sock", ""),
        ("", ""),
        ("ipv4:garbage", ""),
    ],
)
def test_peer_ip(peer: str, ip: str) -> None:
    assert peer_ip(peer) == ip


def test_a_trusted_proxy_forwards_the_rightmost_address() -> None:
    md = [("x-forwarded-for", "6.6.6.6, 198.51.100.4")]
    got = client_address(peer="ipv4:127.0.0.1:1", invocation_metadata=md, trusted_proxies=LOOPBACK)
    assert got == "198.51.100.4"


def test_an_untrusted_peer_cannot_pick_its_address() -> None:
    md = [("x-forwarded-for", "198.51.100.4")]
    got = client_address(
        peer="ipv4:203.0.113.9:1", invocation_metadata=md, trusted_proxies=LOOPBACK
    )
    assert got == "203.0.113.9"


def test_garbage_in_the_header_falls_back_to_the_peer() -> None:
    md = [("x-forwarded-for", "not-an-ip")]
    got = client_address(peer="ipv6:[::1]:1", invocation_metadata=md, trusted_proxies=LOOPBACK)
    assert got == "::1"


def test_no_header_means_the_peer() -> None:
    assert client_address(
        peer="ipv4:127.0.0.1:9", invocation_metadata=None, trusted_proxies=()
    ) == ("127.0.0.1")
