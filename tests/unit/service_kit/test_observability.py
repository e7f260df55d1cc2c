"""service_kit.observability: gRPC metrics with the ecosystem's names and labels,
JSON logs with correlation and trace ids, access lines without personal data."""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY

from service_kit.observability import (
    AccessLogPrivacy,
    JsonFormatter,
    MetricsInterceptor,
    RequestIds,
    correlation_id,
)
from service_kit.server import start_server

pytestmark = pytest.mark.unit


HEALTH = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health"}


def handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "grpc_server_handled_total", {**HEALTH, "grpc_method": method, "grpc_code": code}
    )
    return value or 0.0


def sample(name: str, method: str) -> float:
    return REGISTRY.get_sample_value(name, {**HEALTH, "grpc_method": method}) or 0.0


async def test_every_call_is_timed_with_its_status_code() -> None:
    running = await start_server("127.0.0.1:0", [], interceptors=[MetricsInterceptor()])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            ok_before = handled("Check", "OK")
            missing_before = handled("Check", "NOT_FOUND")
            started_before = sample("grpc_server_started_total", "Check")
            timed_before = sample("grpc_server_handling_seconds_count", "Check")
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert handled("Check", "OK") == ok_before + 1
            assert handled("Check", "NOT_FOUND") == missing_before + 1
            assert sample("grpc_server_started_total", "Check") == started_before + 2
            assert sample("grpc_server_handling_seconds_count", "Check") == timed_before + 2
    finally:
        await running.stop(grace=0)


def test_json_log_lines_carry_the_correlation_id() -> None:
    formatter = JsonFormatter("store_svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "appended %d", (3,), None)
    token = correlation_id.set("corr-42")
    try:
        line: dict[str, Any] = json.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    assert line["message"] == "appended 3"
    assert line["correlation_id"] == "corr-42"
    assert line["service"] == "store_svc" and line["level"] == "INFO"


def test_json_log_lines_carry_the_trace_id_of_the_current_span() -> None:
    provider = TracerProvider()
    formatter = JsonFormatter("query_svc")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "projected", (), None)
    with provider.get_tracer("test").start_as_current_span("request") as span:
        RequestIds().filter(record)
        line: dict[str, Any] = json.loads(formatter.format(record))
        expected = format(span.get_span_context().trace_id, "032x")
    assert line["trace_id"] == expected
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "idle", (), None)
    RequestIds().filter(outside)
    assert "trace_id" not in json.loads(formatter.format(outside))


def test_access_lines_keep_no_client_address_nor_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.9:5555", "GET", "/v1/users?email=john@example.com", "1.1", 200),
        None,
    )
    AccessLogPrivacy().filter(record)
    message = record.getMessage()
    assert message == '- - "GET /v1/users HTTP/1.1" 200'
