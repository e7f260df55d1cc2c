"""client_address: the peer's IP, or a trusted proxy's x-forwarded-for."""

from __future__ import annotations

import pytest

from service_kit.auth import ROLE_ADMIN, ROLE_USER
from service_kit.client_address import client_address, peer_ip, proxy_identity
from tests.auth_support import TEST_TOKENS, bearer, service_identity

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


def _proxy_md(token_md: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("x-forwarded-for", "198.51.100.4"), ("x-proxy-authorization", token_md[0][1])]


def test_a_proxy_proven_by_its_service_token_forwards_the_address() -> None:
    check = proxy_identity(TEST_TOKENS.verifier(), ["proxy-tests"])
    md = _proxy_md(service_identity("proxy-tests")())
    got = client_address(
        peer="ipv4:127.0.0.1:1", invocation_metadata=md, trusted_proxies=(), is_proxy=check
    )
    assert got == "198.51.100.4"


@pytest.mark.parametrize(
    "token_md",
    [
        bearer("proxy-tests", ROLE_USER),  # not a service token
        bearer("admin-user", ROLE_ADMIN),
        [("authorization", "Bearer not-a-token")],
        [("authorization", "proxy-tests")],
    ],
)
def test_loopback_without_a_proxy_identity_cannot_pick_its_address(
    token_md: list[tuple[str, str]],
) -> None:
    check = proxy_identity(TEST_TOKENS.verifier(), ["proxy-tests"])
    got = client_address(
        peer="ipv4:127.0.0.1:1",
        invocation_metadata=_proxy_md(token_md),
        trusted_proxies=(),
        is_proxy=check,
    )
    assert got == "127.0.0.1"


def test_another_service_is_not_a_proxy() -> None:
    check = proxy_identity(TEST_TOKENS.verifier(), ["proxy-tests"])
    md = _proxy_md(service_identity("other-tests")())
    assert (
        client_address(
            peer="ipv4:127.0.0.1:1", invocation_metadata=md, trusted_proxies=(), is_proxy=check
        )
        == "127.0.0.1"
    )
    nobody = proxy_identity(TEST_TOKENS.verifier(), [])
    md = _proxy_md(service_identity("proxy-tests")())
    assert (
        client_address(
            peer="ipv4:127.0.0.1:1", invocation_metadata=md, trusted_proxies=(), is_proxy=nobody
        )
        == "127.0.0.1"
    )
