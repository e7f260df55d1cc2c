"""Requests in flight per client address: a bound, answered 429 beyond it.

The connection caps (:mod:`gateway.connection_limits`) bound how many
sockets one client holds; this bounds how much work it has going at once
(HTTP/1.1 pipelining aside, one request per connection, but slow backends
and long waits such as ``min_position`` add up). :class:`InFlightLimit` is
a pure ASGI middleware:

- a request from a client address (the TCP peer, as everywhere in the
  gateway: a client-sent ``X-Forwarded-For`` proves nothing) that already
  has ``per_client`` requests in flight is answered at once with 429
  ``RESOURCE_EXHAUSTED``, the standard error body and ``Retry-After: 1``;
  it reaches no backend and is reported to :func:`service_kit.refusals.refused`
  as ``gateway.in_flight_per_client``;
- a request counts from when the gateway starts it until its response is
  sent (or it fails): a streamed answer (NDJSON) holds its slot while it
  streams;
- the table holds only addresses with a request in flight, so it is bounded
  by the connection caps.

Invariant: every request admitted is counted down exactly once (``finally``),
whatever the app does, so a client's count never leaks.
"""

from __future__ import annotations

from typing import Final

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import error_body
from service_kit.refusals import refused

__all__ = ["DEFAULT_PER_CLIENT", "LIMIT_NAME", "InFlightLimit"]

DEFAULT_PER_CLIENT: Final = 64
LIMIT_NAME: Final = "gateway.in_flight_per_client"
_RETRY_AFTER: Final = 1


class InFlightLimit:
    """At most ``per_client`` requests in flight per client address (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, per_client: int = DEFAULT_PER_CLIENT) -> None:
        if per_client < 1:
            raise ValueError("per_client must be at least 1")
        self.app = app
        self.per_client = per_client
        self._in_flight: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else ""
        held = self._in_flight.get(address, 0)
        if held >= self.per_client:
            await self._refuse(scope, receive, send)
            return
        self._in_flight[address] = held + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._in_flight[address] - 1
            if left:
                self._in_flight[address] = left
            else:
                del self._in_flight[address]

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        seconds = refused(LIMIT_NAME, _RETRY_AFTER)
        message = (
            f"more than {self.per_client} requests in flight from this client address; "
            f"retry in {seconds} second{'s' if seconds != 1 else ''}"
        )
        response = JSONResponse(
            error_body("RESOURCE_EXHAUSTED", message),
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)

    def in_flight(self, address: str) -> int:
        """Requests of ``address`` in flight now (for tests and metrics)."""
        return self._in_flight.get(address, 0)
