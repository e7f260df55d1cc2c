"""Metrics and structured logs, the same in every service.

- ``MetricsInterceptor`` records every unary and server-streaming RPC's
  latency in a histogram labelled by service, method and status code
  (``rpc_server_handled_seconds``); ``observe_rpc`` adds one entry per
  request served on a long-lived stream (store_svc's AppendStream).
- Gauges and histograms the services update: append batch sizes, relay lag,
  projector lag (positions and seconds).
- ``configure_logging`` emits one JSON object per line carrying the call's
  correlation id (set by the interceptor from ``x-correlation-id``).
- ``start_metrics_server`` serves ``/metrics`` for a service running alone;
  in ``make up`` the gateway's ``/metrics`` shows the whole process.

Invariant: instruments are module-level singletons in the default registry,
so several services in one process share them without double registration.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from prometheus_client import Gauge, Histogram, start_http_server

from service_kit import metadata as md
from service_kit.method_wrappers import MethodWrappers
from service_kit.settings import env_choice, env_int, env_str

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

RPC_SECONDS = Histogram(
    "rpc_server_handled_seconds",
    "Latency of gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
APPEND_BATCH_EVENTS = Histogram(
    "store_append_batch_events",
    "Events written per group-commit batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
RELAY_LAG_POSITIONS = Gauge(
    "store_relay_lag_positions", "Store head position minus the position relayed to Kafka."
)
PROJECTOR_LAG_POSITIONS = Gauge(
    "query_projector_lag_positions", "Store head position minus the projected position."
)
PROJECTOR_LAG_SECONDS = Gauge(
    "query_projector_lag_seconds", "Age of the newest event the projector has applied."
)


def _split(full_method: str) -> tuple[str, str]:
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service, method


if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


class MetricsInterceptor(_InterceptorBase):
    """Times unary and server-streaming calls and sets the correlation id for logs.

    It runs first, in the call's own ``contextvars.Context`` (grpc.aio runs
    the interceptors and the handler of one call in one task), so what it
    sets there (correlation id, the call's metadata) is seen by that call
    only. The timing wrapper of a method is built once and reused while the
    inner handler is the same object (every call but a refused one).
    Client-streaming calls pass untimed: a servicer that serves many
    requests on one stream times each with :func:`observe_rpc`.
    """

    def __init__(self) -> None:
        self._wrapped: MethodWrappers[grpc.RpcMethodHandler[Any, Any]] = MethodWrappers(
            lambda method, handler: _timing(handler, *_split(method))
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        md.remember_call_metadata(details.invocation_metadata)
        correlation_id.set(md.get(details.invocation_metadata, md.CORRELATION_ID))
        handler = await continuation(details)
        if handler is None:
            return handler
        return self._wrapped.get(details.method, handler)


_RPC_CHILDREN: dict[tuple[str, str, str], Any] = {}


def observe_rpc(service: str, method: str, code: str, seconds: float) -> None:
    """Records one call's latency in ``RPC_SECONDS`` (the interceptor's timing
    wrappers, and work it cannot time, such as each append of an AppendStream)."""
    key = (service, method, code)
    child = _RPC_CHILDREN.get(key)
    if child is None:
        child = _RPC_CHILDREN[key] = RPC_SECONDS.labels(service, method, code)
    child.observe(seconds)


def _timing(
    handler: grpc.RpcMethodHandler[Any, Any], service: str, method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its calls' latencies recorded in ``RPC_SECONDS`` by status code."""

    def observe(context: Any, start: float, failed: str | None) -> None:
        code = _code_name(context, default=failed or "OK")
        observe_rpc(service, method, code, time.perf_counter() - start)

    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                reply = await inner(request, context)
            except BaseException:
                observe(context, start, "UNKNOWN")
                raise
            observe(context, start, None)
            return reply

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream  # an async generator function under aio

        async def streaming(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            try:
                async for item in stream(request, context):
                    yield item
            except BaseException:
                observe(context, start, "CANCELLED")
                raise
            observe(context, start, None)

        return grpc.unary_stream_rpc_method_handler(
            streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _code_name(context: Any, *, default: str) -> str:
    try:
        code = context.code()
    except Exception:  # a context without code() reports the default
        return default
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return default


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation id, error."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        corr = correlation_id.get()
        if corr:
            entry["correlation_id"] = corr
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Root logging for a process: JSON lines (or plain text for a terminal)."""
    handler = logging.StreamHandler()
    if json_lines:
        formatter: logging.Formatter = JsonFormatter(service)
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serves ``/metrics`` on its own port (a daemon thread); 0 disables it."""
    if port:
        start_http_server(port, addr=host)


def setup_process(service: str, env: Mapping[str, str]) -> None:
    """Logging and, if ``METRICS_PORT`` is set, a /metrics port for a service run alone.

    ``LOG_FORMAT``: ``json`` (default; one object per line) or ``text``.
    ``LOG_LEVEL``: default ``INFO``. ``METRICS_PORT``: default 0 (off).
    """
    log_format = env_choice(env, "LOG_FORMAT", "json", ("json", "text"))
    level = env_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
    configure_logging(service, level=level, json_lines=log_format == "json")
    start_metrics_server(
        env_int(env, "METRICS_PORT", 0, minimum=0, maximum=65535),
        env_str(env, "METRICS_HOST", "127.0.0.1"),
    )


class _Lagging(Protocol):
    @property
    def lag(self) -> int: ...


class _Projecting(Protocol):
    @property
    def applied_position(self) -> int: ...

    @property
    def source_position(self) -> int: ...

    applied_event_time: datetime | None


def observe_relay(relay: _Lagging) -> None:
    """Reports the relay's lag (head minus relayed position) at every scrape."""
    RELAY_LAG_POSITIONS.set_function(lambda: float(relay.lag))


def observe_projector(projector: _Projecting) -> None:
    """Reports the projector's lag in positions and in seconds at every scrape."""
    PROJECTOR_LAG_POSITIONS.set_function(
        lambda: float(max(0, projector.source_position - projector.applied_position))
    )

    def seconds() -> float:
        newest = projector.applied_event_time
        behind = projector.source_position > projector.applied_position
        if newest is None or not behind:
            return 0.0
        return max(0.0, (datetime.now(UTC) - newest).total_seconds())

    PROJECTOR_LAG_SECONDS.set_function(seconds)
