"""Metrics and structured logs, the same in every service.

Metric names and labels are the gRPC ecosystem's (go-grpc-prometheus,
py-grpc-prometheus), so stock dashboards and alerts fit:

- ``grpc_server_started_total{grpc_type,grpc_service,grpc_method}``,
  ``grpc_server_handled_total{...,grpc_code}`` and the histogram
  ``grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}``,
  recorded by ``MetricsInterceptor`` for unary and server-streaming calls and
  by ``observe_rpc`` for each request served on a long-lived stream (store_svc's
  AppendStream, counted as ``unary``: one request, one answer);
- ``build_info{version,python}`` (always 1);
- counters of what an operator alerts on: login failures, limit refusals,
  projector errors, relay errors (one-line calls at the places they happen);
- gauges exported only by the process that knows them: ``observe_relay`` and
  ``observe_projector`` create the lag gauges when a relay or projector
  starts, so a gateway running alone exports none (it used to export zeros).

``configure_logging`` emits one JSON object per line carrying the call's
correlation id (set by the interceptor from ``x-correlation-id``) and trace
id. ``start_metrics_server`` serves ``/metrics`` for a service running alone;
in ``make up`` the gateway's ``/metrics`` shows the whole process.

Invariant: instruments are module-level singletons in the default registry
(the lag gauges: created once, on first use), so several services in one
process share them without double registration.
"""

from __future__ import annotations

import contextvars
import json
import logging
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

from service_kit import metadata as md
from service_kit import refusals, tracing
from service_kit.method_wrappers import MethodWrappers
from service_kit.settings import SettingsError, env_choice, env_int, env_str

# What setup_process reads (with tracing.VARIABLES): every service's logs, metrics, traces.
PROCESS_VARIABLES = ("LOG_FORMAT", "LOG_LEVEL", "METRICS_PORT", "METRICS_HOST", *tracing.VARIABLES)

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")

_GRPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    [*_GRPC_LABELS, "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its end on the server.",
    _GRPC_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
APPEND_BATCH_EVENTS = Histogram(
    "store_append_batch_events",
    "Events written per group-commit batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
LOGIN_FAILURES = Counter("query_login_failures_total", "Logins refused, by reason.", ["reason"])
LIMIT_REFUSALS = Counter(
    "query_limit_refusals_total", "Requests refused by a rate limit, by limit.", ["limit"]
)


def _count_refusal(limit: str, _retry_after: int) -> None:
    LIMIT_REFUSALS.labels(limit).inc()


# Every limit reports its refusals through service_kit.refusals (one place);
# the counter is labelled with the limit's name (login.pair, register.address, ...).
refusals.add_hook(_count_refusal)
PROJECTOR_ERRORS = Counter(
    "query_projector_errors_total", "Projector batches that failed (and are retried)."
)
RELAY_ERRORS = Counter(
    "store_relay_errors_total", "Outbox relay sessions that failed (and are retried)."
)
BUILD_INFO = Info("build", "The version of cqrs-users and of Python this process runs.")


def _version() -> str:
    try:
        return package_metadata.version("cqrs-users")
    except package_metadata.PackageNotFoundError:  # run from a source tree without install
        return "unknown"


BUILD_INFO.info({"version": _version(), "python": platform.python_version()})


def _split(full_method: str) -> tuple[str, str]:
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service, method


if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


class MetricsInterceptor(_InterceptorBase):
    """Counts and times unary and server-streaming calls; sets the correlation id for logs.

    It runs first, in the call's own ``contextvars.Context`` (grpc.aio runs
    the interceptors and the handler of one call in one task), so what it
    sets there (correlation id, the call's metadata) is seen by that call
    only. The timing wrapper of a method is built once and reused while the
    inner handler is the same object (every call but a refused one).
    Client-streaming calls pass uncounted: a servicer that serves many
    requests on one stream counts each with :func:`observe_rpc`.
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


class _Children:
    """The labelled children of one method's instruments, looked up once."""

    __slots__ = ("handled", "labels", "seconds", "started")

    def __init__(self, kind: str, service: str, method: str) -> None:
        self.labels = (kind, service, method)
        self.started = GRPC_STARTED.labels(*self.labels)
        self.seconds = GRPC_SECONDS.labels(*self.labels)
        self.handled: dict[str, Any] = {}

    def done(self, code: str, seconds: float) -> None:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = GRPC_HANDLED.labels(*self.labels, code)
        child.inc()
        self.seconds.observe(seconds)


_CHILDREN: dict[tuple[str, str, str], _Children] = {}


def _children(kind: str, service: str, method: str) -> _Children:
    key = (kind, service, method)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = _Children(kind, service, method)
    return found


def observe_rpc(service: str, method: str, code: str, seconds: float) -> None:
    """Counts one request served on a stream as a started and handled unary call
    (each append of an AppendStream, which the interceptor cannot see)."""
    children = _children("unary", service, method)
    children.started.inc()
    children.done(code, seconds)


def _timing(
    handler: grpc.RpcMethodHandler[Any, Any], service: str, method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its calls counted and timed by status code."""

    def observe(children: _Children, context: Any, start: float, failed: str | None) -> None:
        code = _code_name(context, default=failed or "OK")
        children.done(code, time.perf_counter() - start)

    if handler.unary_unary is not None:
        inner = handler.unary_unary
        unary_children = _children("unary", service, method)

        async def unary(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            unary_children.started.inc()
            try:
                reply = await inner(request, context)
            except BaseException:
                observe(unary_children, context, start, "UNKNOWN")
                raise
            observe(unary_children, context, start, None)
            return reply

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream  # an async generator function under aio
        stream_children = _children("server_stream", service, method)

        async def streaming(request: Any, context: Any) -> Any:
            start = time.perf_counter()
            stream_children.started.inc()
            try:
                async for item in stream(request, context):
                    yield item
            except BaseException:
                observe(stream_children, context, start, "CANCELLED")
                raise
            observe(stream_children, context, start, None)

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


class RequestIds(logging.Filter):
    """Adds the current request's ``correlation_id`` and ``trace_id`` to every record
    ("" outside a request), so every line of a request, access logs included, names it;
    ``request_ids`` is the two in brackets for text lines ("" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = corr = correlation_id.get()
        record.trace_id = trace = tracing.current_trace_id()
        ids = " ".join(i for i in (corr, trace) if i)
        record.request_ids = f" [{ids}]" if ids else ""
        return True


class AccessLogPrivacy(logging.Filter):
    """uvicorn's access lines without the client's address and the query string
    (personal data: an address, an email in ``?email=``); method, path and status stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            args = list(record.args)
            if len(args) == 5:  # (client, method, path with query, HTTP version, status)
                args[0] = "-"
                args[2] = str(args[2]).partition("?")[0]
                record.args = tuple(args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation and trace ids, error."""

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
        corr = getattr(record, "correlation_id", None)
        if corr is None:  # a record that did not pass the handler's RequestIds filter
            corr = correlation_id.get()
        if corr:
            entry["correlation_id"] = corr
        trace = getattr(record, "trace_id", None)
        if trace is None:
            trace = tracing.current_trace_id()
        if trace:
            entry["trace_id"] = trace
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_ids)s %(message)s"


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Root logging for a process: JSON lines, or plain text for a terminal; both
    carry the correlation and trace ids of the request being served."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIds())
    handler.addFilter(AccessLogPrivacy())
    if json_lines:
        formatter: logging.Formatter = JsonFormatter(service)
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serves ``/metrics`` on its own port (a daemon thread); 0 disables it.

    Raises ``SettingsError`` naming ``METRICS_PORT`` when the port cannot be bound.
    """
    if port:
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise SettingsError(
                f"METRICS_PORT={port}: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None


def setup_process(service: str, env: Mapping[str, str], *, log_format: str = "json") -> None:
    """Logging, tracing (``OTEL_*``), and, if ``METRICS_PORT`` is set, a /metrics port.

    ``LOG_FORMAT``: ``json`` (one object per line) or ``text``; ``log_format``
    is the default (``make up`` passes ``text``). ``LOG_LEVEL``: default
    ``INFO``. ``METRICS_PORT``: default 0 (off). Raises ``SettingsError``.
    """
    chosen = env_choice(env, "LOG_FORMAT", log_format, ("json", "text"))
    level = env_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
    configure_logging(service, level=level, json_lines=chosen == "json")
    tracing.configure(service, env)
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


_GAUGES: dict[str, Gauge] = {}


def _gauge(name: str, documentation: str) -> Gauge:
    """The gauge ``name``, registered on first use (by the process that knows its value)."""
    gauge = _GAUGES.get(name)
    if gauge is None:
        gauge = _GAUGES[name] = Gauge(name, documentation)
    return gauge


def observe_relay(relay: _Lagging) -> None:
    """Exports the relay's lag (head minus relayed position), read at every scrape."""
    _gauge(
        "store_relay_lag_positions", "Store head position minus the position relayed to Kafka."
    ).set_function(lambda: float(relay.lag))


def observe_projector(projector: _Projecting) -> None:
    """Exports the projector's lag in positions and in seconds, read at every scrape."""
    _gauge(
        "query_projector_lag_positions", "Store head position minus the projected position."
    ).set_function(lambda: float(max(0, projector.source_position - projector.applied_position)))

    def seconds() -> float:
        newest = projector.applied_event_time
        behind = projector.source_position > projector.applied_position
        if newest is None or not behind:
            return 0.0
        return max(0.0, (datetime.now(UTC) - newest).total_seconds())

    _gauge(
        "query_projector_lag_seconds", "Age of the newest event the projector has applied."
    ).set_function(seconds)


def observe_store_role(role: Callable[[], str]) -> None:
    """Exports ``store_leader`` (1 while this store is the writer, 0 as a standby)."""
    _gauge("store_leader", "1 while this store holds the writer role, else 0.").set_function(
        lambda: 1.0 if role() == "leader" else 0.0
    )
