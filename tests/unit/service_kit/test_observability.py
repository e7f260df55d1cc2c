"""service_kit.observability: RPC latency metrics by code, JSON logs with correlation ids."""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from service_kit.observability import JsonFormatter, MetricsInterceptor, correlation_id
from service_kit.server import start_server

pytestmark = pytest.mark.unit


def handled(method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "rpc_server_handled_seconds_count",
        {"service": "grpc.health.v1.Health", "method": method, "code": code},
    )
    return value or 0.0


async def test_every_call_is_timed_with_its_status_code() -> None:
    running = await start_server("127.0.0.1:0", [], interceptors=[MetricsInterceptor()])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            ok_before = handled("Check", "OK")
            missing_before = handled("Check", "NOT_FOUND")
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert handled("Check", "OK") == ok_before + 1
            assert handled("Check", "NOT_FOUND") == missing_before + 1
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
