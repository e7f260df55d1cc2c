"""HTTP server metrics and the request's correlation id, for every gateway request.

Metric names and labels are OpenTelemetry's HTTP semantic conventions as
Prometheus exports them, so stock HTTP dashboards fit:

- ``http_server_request_duration_seconds{http_request_method,http_route,
  http_response_status_code}`` (a histogram: its ``_count`` counts requests);
- ``http_server_active_requests{http_request_method}``.

``http_route`` is the matched route template (``/v1/users/{user_id}``; the
dispatcher puts it in the scope), never the raw path, so a client cannot
grow the label set; unmatched paths are ``unmatched``. The method is one
of the standard verbs or ``_OTHER``.

The correlation id (the client's ``X-Correlation-Id``, else a fresh one) is
set here, before anything logs, in the request task's context: every log
line of the request, uvicorn's access line included, carries it, and the
dispatcher forwards the same id to the backends.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit import metadata
from service_kit.observability import correlation_id

ROUTE_KEY: Final = "cqrs.http_route"  # scope key the dispatcher sets to the route template
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_MAX_CORRELATION = 128

REQUEST_SECONDS = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP server requests.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10),
)
ACTIVE_REQUESTS = Gauge(
    "http_server_active_requests",
    "HTTP server requests in flight.",
    ["http_request_method"],
)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1")).strip()
    return ""


class RequestObservability:
    """ASGI middleware: correlation id for logs, request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        corr = _header(scope, b"x-correlation-id")[:_MAX_CORRELATION]
        correlation_id.set(corr or metadata.new_correlation_id())
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        status = 500  # what the server answers if the app fails before starting a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        active = ACTIVE_REQUESTS.labels(method)
        active.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            active.dec()
            route = str(scope.get(ROUTE_KEY, "unmatched"))
            REQUEST_SECONDS.labels(method, route, str(status)).observe(
                time.perf_counter() - started
            )
