"""Serving one HTTP request: route, transcode, call, answer.

Every answer is JSON (or NDJSON for a server-streaming RPC). A failure is
always the standard error body with the status :mod:`gateway.errors` maps;
an unexpected exception is a logged 500, never a stack trace to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.backends import Backends
from gateway.errors import GatewayError, from_rpc_error, too_large
from gateway.forwarding import call_metadata, forwarded_headers, proxy_metadata
from gateway.health import MetadataSource, check
from gateway.health import liveness as health_liveness
from gateway.http_observability import ROUTE_KEY
from gateway.profiles import ServedRoute
from gateway.router import RouteTable
from gateway.routes import HttpRoute
from gateway.seed_format import IGNORED_HEADER, health_body, ignored_header, seed_query
from gateway.settings import GatewaySettings
from gateway.transcode import build_request, dumps, render

log = logging.getLogger(__name__)

JSON = "application/json"
NDJSON = "application/x-ndjson"

# How long a stream may take to produce its first message before the 200
# headers go out anyway. Within it, a refusal (401, 403, 404, ...) is
# answered with its own status; after it, an error is the stream's last line.
FIRST_MESSAGE_WAIT = 0.5


@dataclass(slots=True)
class GatewayState:
    """What every request needs. ``backends`` exists between lifespan start and stop."""

    settings: GatewaySettings
    table: RouteTable[Endpoint]
    openapi: bytes
    service_metadata: MetadataSource
    backends: Backends | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def require_backends(self) -> Backends:
        if self.backends is None or self.stopping.is_set():
            raise GatewayError(503, "UNAVAILABLE", "the gateway is not serving")
        return self.backends


LocalHandler = Callable[[Request, GatewayState], Awaitable[Response]]
Endpoint = ServedRoute | LocalHandler


class Dispatcher:
    """The ASGI app behind every path (mounted as Starlette's router default)."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # websockets are not served
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        try:
            resolved = self.state.table.resolve(request.method, _raw_path(request))
            request.scope[ROUTE_KEY] = resolved.template.text  # the metrics' http_route
            if isinstance(resolved.target, ServedRoute):
                return await call_rpc(request, self.state, resolved.target, resolved.params)
            return await resolved.target(request, self.state)
        except GatewayError as exc:
            return error_response(exc)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody is left to read it
        except Exception:
            log.exception("unhandled error serving %s %s", request.method, request.url.path)
            return error_response(GatewayError(500, "INTERNAL", "internal error in the gateway"))


def error_response(exc: GatewayError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps(exc.body()),
        status_code=exc.status,
        media_type=JSON,
        headers={**exc.headers, **(headers or {})},
    )


async def call_rpc(
    request: Request, state: GatewayState, served: ServedRoute, params: dict[str, str]
) -> Response:
    """Transcodes the request, calls the RPC and answers its reply in the route's shape."""
    route, seed = served.route, served.seed
    body = await read_body(request, state.settings.max_body_bytes)
    query = request.query_params.multi_items()
    headers: dict[str, str] = {}
    if seed is not None:
        query, ignored = seed_query(seed, route, query)
        if ignored:
            headers[IGNORED_HEADER] = ignored_header(ignored)
    message = build_request(route, path_params=params, query=query, body=body)
    client = request.client.host if request.client else None
    metadata, correlation = call_metadata(forwarded_headers(request.scope["headers"]), client)
    metadata += proxy_metadata(state.service_metadata)
    headers["X-Correlation-Id"] = correlation
    backends = state.require_backends()
    if route.rpc.server_streaming:
        return await _stream(state, route, message, metadata, headers)
    try:
        reply = await backends.unary(route.rpc)(
            message, timeout=state.settings.call_timeout, metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(from_rpc_error(exc, backend=route.rpc.service), headers)
    answer = render(route, reply)
    if seed is not None and seed.render is not None:
        try:
            answer = seed.render(message, answer, headers)
        except GatewayError as exc:
            return error_response(exc, headers)
    return Response(
        dumps(answer),
        status_code=route.success_status,
        media_type=JSON,
        headers=headers,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


_END: Any = object()


async def _next(iterator: AsyncIterator[Any]) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return _END


async def _stream(
    state: GatewayState,
    route: HttpRoute,
    message: Any,
    metadata: list[tuple[str, str]],
    headers: dict[str, str],
) -> Response:
    # No deadline: a subscription lasts as long as the client listens.
    call = state.require_backends().stream(route.rpc)(message, metadata=metadata)
    iterator = call.__aiter__()
    first: asyncio.Future[Any] = asyncio.ensure_future(_next(iterator))
    done, _ = await asyncio.wait({first}, timeout=FIRST_MESSAGE_WAIT)
    if first in done and first.exception() is not None:
        call.cancel()
        exc = first.exception()
        if isinstance(exc, grpc.aio.AioRpcError):
            return error_response(from_rpc_error(exc, backend=route.rpc.service), headers)
        first.result()  # re-raises anything else: a bug, answered as a logged 500
    return StreamingResponse(
        _ndjson(route, call, iterator, first, state.stopping),
        status_code=route.success_status,
        media_type=NDJSON,
        headers={**headers, "Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _ndjson(
    route: HttpRoute,
    call: Any,
    iterator: AsyncIterator[Any],
    first: asyncio.Future[Any],
    stopping: asyncio.Event,
) -> AsyncIterator[bytes]:
    """One JSON object per line until the stream ends, the client leaves or the gateway stops.

    Invariant: the gRPC call is cancelled whenever this ends, so a client
    that disconnects never leaves a subscription running.
    """
    pending = first
    stop_waiter = asyncio.ensure_future(stopping.wait())
    try:
        while True:
            await asyncio.wait({pending, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not pending.done():
                return  # the gateway is stopping
            item = pending.result()
            if item is _END:
                return
            yield dumps(render(route, item)) + b"\n"
            pending = asyncio.ensure_future(_next(iterator))
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc, backend=route.rpc.service)
        yield dumps(error.body()) + b"\n"
    finally:
        pending.cancel()
        stop_waiter.cancel()
        call.cancel()


async def liveness(request: Request, state: GatewayState) -> Response:
    """``GET /health/live`` (see :mod:`gateway.health`)."""
    status, body = health_liveness()
    return Response(dumps(body), status_code=status, media_type=JSON)


async def health(request: Request, state: GatewayState) -> Response:
    """``GET /health`` and ``GET /health/ready`` (see :mod:`gateway.health`)."""
    status, body = await check(
        state.require_backends(),
        state.settings.backends,
        service_metadata=state.service_metadata,
        deadline=state.settings.health_timeout,
    )
    return Response(dumps(health_body(body)), status_code=status, media_type=JSON)


async def metrics(request: Request, state: GatewayState) -> Response:
    """``GET /metrics``: Prometheus text of this process (every service in ``make up``)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request, state: GatewayState) -> Response:
    """``GET /openapi.json``: rendered once at start."""
    return Response(state.openapi, media_type=JSON)


def _raw_path(request: Request) -> str:
    # raw_path keeps %2F inside a segment apart from a real "/" separator.
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    return str(request.scope["path"])
