"""Who is on the other end of a call: the client's IP address.

The peer address of the connection is the truth unless the peer is a
trusted proxy (the gateway, on loopback by default): then the address the
proxy appended to ``x-forwarded-for`` (the rightmost entry, the only one a
client cannot forge through that proxy) is used. A client talking to
query_svc directly cannot pick its address by sending the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Final

from service_kit import metadata

FORWARDED_FOR: Final = "x-forwarded-for"


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


def client_address(
    *, peer: str, invocation_metadata: Iterable[Any] | None, trusted_proxies: Iterable[str]
) -> str:
    """The caller's IP address (see the module docstring); "" if unknown."""
    ip = peer_ip(peer)
    if ip and ip in set(trusted_proxies):
        forwarded = metadata.get(invocation_metadata, FORWARDED_FOR)
        if forwarded:
            claimed = _ip(forwarded.rsplit(",", 1)[-1])
            if claimed:
                return claimed
    return ip
