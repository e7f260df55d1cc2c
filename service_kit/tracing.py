"""OpenTelemetry tracing, the same in every service, off unless configured.

Configured by the standard variables: ``OTEL_TRACES_EXPORTER`` (``none``,
the default; ``otlp``; ``console``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_TRACES_SAMPLER``,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SDK_DISABLED``
(read by the OpenTelemetry SDK and exporter themselves).

How a trace crosses every hop:

- the gateway's ASGI middleware (:func:`asgi_middleware`) accepts a W3C
  ``traceparent`` header and opens the request's server span;
- gRPC client and server interceptors (:func:`client_interceptors`,
  :func:`server_interceptors`) carry it in call metadata;
- store_svc stores :func:`current_traceparent` with every event it appends
  (beside the correlation and causation ids), or the ``traceparent`` an
  AppendStream request carries;
- the outbox relay puts the event's ``traceparent`` in the Kafka message's
  headers, and the projector continues the trace from it (:func:`record_spans`).

Invariants: with tracing off no interceptor or middleware is installed and
:func:`current_traceparent` is "" unless a caller's context is active, so the
default costs nothing. One process may run several services (``make up``):
each gets its own tracer provider, so spans name the service that made them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

from service_kit.settings import env_choice

_EXPORTERS = ("none", "otlp", "console")
# The variables that configure tracing: read here (the first two) or by the
# OpenTelemetry SDK and exporter; docker-compose passes each to every service.
# (OTEL_SERVICE_NAME too is honoured, but only for a service run alone: each
# service names itself, and one name for all four would merge them.)
VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
)
# Health checks and reflection are probes, not requests: never traced.
_UNTRACED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


class _State:
    exporter: str = "none"
    service_name: str = ""
    providers: dict[str, TracerProvider] = {}  # noqa: RUF012 (one process-wide registry)


def configure(service: str, env: Mapping[str, str]) -> None:
    """Reads ``OTEL_TRACES_EXPORTER`` (``SettingsError`` for an unknown one) and
    ``OTEL_SDK_DISABLED``; tracing is on when an exporter is named."""
    exporter = env_choice(env, "OTEL_TRACES_EXPORTER", "none", _EXPORTERS)
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        exporter = "none"
    _State.exporter = exporter
    _State.service_name = env.get("OTEL_SERVICE_NAME", "").strip()


def enabled() -> bool:
    """True when this process exports spans."""
    return _State.exporter != "none"


def _new_exporter() -> SpanExporter:
    if _State.exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # imported only when used: it loads the gRPC exporter stack
    )

    return OTLPSpanExporter()


def provider(service: str) -> TracerProvider | None:
    """The tracer provider of ``service`` (None while tracing is off)."""
    if not enabled():
        return None
    found = _State.providers.get(service)
    if found is None:
        name = _State.service_name or service
        found = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        found.add_span_processor(BatchSpanProcessor(_new_exporter()))
        _State.providers[service] = found
    return found


def tracer(service: str) -> trace.Tracer:
    """A tracer of ``service`` (a no-op one while tracing is off)."""
    return trace.get_tracer("cqrs-users", tracer_provider=provider(service))


def server_interceptors(service: str) -> list[Any]:
    """The gRPC server interceptor opening a span per call (none while off)."""
    tracer_provider = provider(service)
    if tracer_provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415
    from opentelemetry.instrumentation.grpc.filters import (  # noqa: PLC0415
        any_of,
        negate,
        service_name,
    )

    untraced = any_of(*(service_name(s) for s in _UNTRACED_SERVICES))
    server = aio_server_interceptor(  # type: ignore[no-untyped-call]  # untyped library
        tracer_provider=tracer_provider, filter_=negate(untraced)
    )
    return [server]


def client_interceptors(service: str) -> list[Any]:
    """gRPC client interceptors sending the current trace context (none while off)."""
    tracer_provider = provider(service)
    if tracer_provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors  # noqa: PLC0415

    client = aio_client_interceptors(tracer_provider=tracer_provider)  # type: ignore[no-untyped-call]
    return list(client)


def asgi_middleware(service: str) -> Any | None:
    """The ASGI middleware class and options for the gateway, or None while off."""
    tracer_provider = provider(service)
    if tracer_provider is None:
        return None
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: PLC0415

    options = {
        "tracer_provider": tracer_provider,
        # Probes are not requests; per-message receive/send spans are noise.
        "excluded_urls": "/health,/metrics",
        "exclude_spans": ["receive", "send"],
    }
    return OpenTelemetryMiddleware, options


def current_trace_id() -> str:
    """The 32-hex-digit id of the current trace, or "" outside one."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


def current_traceparent() -> str:
    """The W3C ``traceparent`` of the current span, or "" outside a trace
    (always while tracing is off: no interceptor opens a span then)."""
    if not enabled():
        return ""  # the hot path (every append) skips the propagator
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


def trace_id_of(traceparent: str) -> str:
    """The trace id a ``traceparent`` names ("" if it is not one)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


@contextlib.contextmanager
def continued(service: str, name: str, traceparent: str, *, kind: trace.SpanKind) -> Iterator[str]:
    """A span named ``name`` continuing the trace of ``traceparent`` (a new
    trace when it is empty), current while the block runs; yields the
    ``traceparent`` to record for the work done in it. While tracing is off
    no span is made (a hot path pays nothing) and ``traceparent`` passes as is."""
    if not enabled():
        yield traceparent
        return
    parent = extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    with tracer(service).start_as_current_span(name, context=parent, kind=kind):
        yield current_traceparent()


def record_spans(
    service: str,
    name: str,
    traceparents: Iterable[str],
    *,
    start_ns: int,
    end_ns: int,
    kind: trace.SpanKind,
) -> None:
    """One finished span per non-empty ``traceparent``, each continuing its own
    trace, for work done for many traced requests at once (a projector batch)."""
    if not enabled():
        return
    traced = tracer(service)
    for traceparent in traceparents:
        if traceparent:
            parent = extract({"traceparent": traceparent})
            traced.start_span(name, context=parent, kind=kind, start_time=start_ns).end(end_ns)


def shutdown() -> None:
    """Exports the spans still buffered (at process stop)."""
    for tracer_provider in _State.providers.values():
        tracer_provider.shutdown()
    _State.providers.clear()
