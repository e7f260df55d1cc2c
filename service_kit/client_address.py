"""Who is on the other end of a call: the client's IP address.

The peer address of the connection is the truth unless the immediate caller
is a configured proxy. Only then is the address the proxy appended to
``x-forwarded-for`` (the rightmost entry, the only one a client cannot forge
through that proxy) used. A proxy is recognised by

- its identity: ``x-proxy-authorization`` carries a service token of one of
  the configured proxy services (the gateway signs one with its own key;
  clients never see it), checked by :func:`proxy_identity`; or
- its peer IP, listed in the configured trusted proxies (none by default:
  loopback alone proves nothing, every local process shares it).

A client talking to a service directly cannot pick its address by sending
the header, not even from loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, Final

from service_kit import metadata
from service_kit.auth import TokenVerifier
from service_kit.errors import ServiceError

__all__ = [
    "FORWARDED_FOR",
    "PROXY_AUTHORIZATION",
    "ProxyCheck",
    "client_address",
    "peer_ip",
    "proxy_identity",
]

FORWARDED_FOR: Final = "x-forwarded-for"
PROXY_AUTHORIZATION: Final = "x-proxy-authorization"

ProxyCheck = Callable[[str], bool]


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return ""


def peer_ip(peer: str) -> str:
    """The IP of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``); "" if none."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return _ip(rest.rpartition(":")[0])
    if kind == "ipv6":
        host = rest.rpartition(":")[0] if rest.startswith("[") else rest
        return _ip(host.strip("[]").split("%")[0])
    return ""


def proxy_identity(verifier: TokenVerifier, services: Iterable[str]) -> ProxyCheck:
    """Whether an ``x-proxy-authorization`` value is a valid token of one of ``services``."""
    names = frozenset(services)

    def check(value: str) -> bool:
        scheme, _, token = value.strip().partition(" ")
        if not names or scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            principal = verifier.decode(token.strip())
        except ServiceError:
            return False
        return principal.is_service and principal.subject in names

    return check


def client_address(
    *,
    peer: str,
    invocation_metadata: Iterable[Any] | None,
    trusted_proxies: Iterable[str],
    is_proxy: ProxyCheck | None = None,
) -> str:
    """The caller's IP address (see the module docstring); "" if unknown."""
    ip = peer_ip(peer)
    forwarded = metadata.get(invocation_metadata, FORWARDED_FOR)
    if not forwarded:
        return ip
    trusted = bool(ip) and ip in set(trusted_proxies)
    if not trusted and is_proxy is not None:
        trusted = is_proxy(metadata.get(invocation_metadata, PROXY_AUTHORIZATION))
    if trusted:
        claimed = _ip(forwarded.rsplit(",", 1)[-1])
        if claimed:
            return claimed
    return ip
