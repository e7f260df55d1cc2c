"""HTTP request headers → gRPC call metadata.

Forwarded: ``Authorization``, ``X-Correlation-Id``, ``X-Causation-Id``,
``Idempotency-Key``, ``X-Min-Position``; ``x-forwarded-for`` is the address
of the client connected to the gateway (a client-sent X-Forwarded-For is
not trusted: the gateway is the edge), and ``x-proxy-authorization`` the
gateway's own service token, which is how the services know that
``x-forwarded-for`` comes from the gateway (``service_kit.client_address``).
A request without a correlation id gets a fresh one, which the gateway
also answers in ``X-Correlation-Id``.

gRPC metadata values must be printable ASCII; a header that is not is 400
naming the header, never a failed call.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping

from gateway.errors import bad_request
from service_kit.auth import AUTHORIZATION
from service_kit.client_address import PROXY_AUTHORIZATION
from service_kit.observability import correlation_id

CORRELATION_HEADER = "x-correlation-id"

# header (lower-case) → (metadata key, longest value accepted)
_FORWARDED: dict[str, tuple[str, int]] = {
    "authorization": ("authorization", 8192),
    CORRELATION_HEADER: ("x-correlation-id", 128),
    "x-causation-id": ("x-causation-id", 128),
    # command_svc's bound (command_svc.idempotency.MAX_KEY_LENGTH), stated in the OpenAPI document.
    "idempotency-key": ("idempotency-key", 128),
    "x-min-position": ("x-min-position", 20),
}
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_POSITION = re.compile(r"[0-9]+")
_DISPLAY = {
    "authorization": "Authorization",
    CORRELATION_HEADER: "X-Correlation-Id",
    "x-causation-id": "X-Causation-Id",
    "idempotency-key": "Idempotency-Key",
    "x-min-position": "X-Min-Position",
}


_WANTED = {name.encode("latin-1"): name for name in _FORWARDED}


def forwarded_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers ``call_metadata`` reads, from an ASGI scope's raw header list,
    keyed by lower-case name; the first of repeated ones wins (as Starlette's
    ``Headers.get``). One pass, instead of one scan of every header per name."""
    out: dict[str, str] = {}
    for key, value in raw:
        name = _WANTED.get(key.lower())
        if name is not None and name not in out:
            out[name] = value.decode("latin-1")
    return out


def call_metadata(
    headers: Mapping[str, str], client_host: str | None
) -> tuple[list[tuple[str, str]], str]:
    """(metadata for the gRPC call, the correlation id in use).

    ``headers`` is keyed case-insensitively (Starlette's Headers), or by
    lower-case names.
    """
    metadata: list[tuple[str, str]] = []
    for header, (key, limit) in _FORWARDED.items():
        value = headers.get(header)
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        name = _DISPLAY[header]
        if not _PRINTABLE.fullmatch(value):
            raise bad_request(name, "header must be printable ASCII")
        if len(value) > limit:
            raise bad_request(name, f"header longer than {limit} characters")
        if header == "x-min-position" and not _POSITION.fullmatch(value):
            raise bad_request(name, f"expected a non-negative integer, got {value[:32]!r}")
        metadata.append((key, value))
    correlation = next((v for k, v in metadata if k == CORRELATION_HEADER), "")
    if not correlation:
        # The id the request's log lines already carry (gateway.http_observability).
        correlation = correlation_id.get() or str(uuid.uuid4())
        metadata.append((CORRELATION_HEADER, correlation))
    if client_host:
        metadata.append(("x-forwarded-for", client_host))
    return metadata, correlation


def proxy_metadata(service_metadata: Callable[[], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The gateway's service token as ``x-proxy-authorization`` (its proof of being the proxy)."""
    return [
        (PROXY_AUTHORIZATION, value) for key, value in service_metadata() if key == AUTHORIZATION
    ]
