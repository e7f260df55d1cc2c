"""One request traced through every hop of the production stack.

gateway -> command_svc -> store_svc (ClickHouse) -> Kafka -> query_svc
(PostgreSQL): the system runs with ``OTEL_TRACES_EXPORTER=otlp`` pointed at
an in-process OTLP receiver. A registration sent with a W3C ``traceparent``
must yield spans from each of the four services in that one trace, the
event it stored must carry the trace, and every log line of the request
(the access line included) must name the trace and correlation ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.conftest import drop_production_data
from tests.e2e.http_client import HttpClient
from tests.e2e.otlp_receiver import OtlpReceiver
from tests.e2e.support import login, unique_email
from tests.e2e.system_process import SystemProcess, production_available, start_system

pytestmark = pytest.mark.e2e

SERVICES = {"gateway", "command_svc", "store_svc", "query_svc"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_system(
    receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SystemProcess]:
    if not production_available(dict(os.environ)):
        pytest.skip("ClickHouse/PostgreSQL/Kafka not configured (make test sets them)")
    system = start_system(
        tmp_path_factory.mktemp("traced"),
        BodyLog(),
        mode="production",
        extra_env={
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: spans reach the receiver quickly
            "LOG_FORMAT": "json",
            "GATEWAY_ACCESS_LOG": "on",  # off by default (its cost per request)
        },
    )
    try:
        yield system
    finally:
        code = system.stop()
        asyncio.run(drop_production_data(system.env))
    # Spans still buffered are exported at stop, without holding the stop up.
    assert code == 0, system.log_tail()


def log_lines(path: Path) -> list[dict[str, object]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_one_trace_crosses_every_hop_and_is_stored_with_the_event(
    traced_system: SystemProcess, receiver: OtlpReceiver
) -> None:
    http = HttpClient(traced_system.ports.auth, BodyLog(), prefix="/v1")
    trace_id = secrets.token_hex(16)
    correlation = f"trace-test-{secrets.token_hex(4)}"
    answer = http.post(
        "/register",
        json_body={"email": unique_email("traced"), "password": "SecurePass123!"},
        headers={
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
            "X-Correlation-Id": correlation,
        },
    )
    assert answer.status == 201, answer.describe()
    user_id = answer.json()["id"]

    spans = receiver.wait_for_services(trace_id, SERVICES)
    assert {s.service for s in spans} >= SERVICES, spans
    assert all(s.trace_id == trace_id for s in spans)

    token = login(http, traced_system.admin_email, traced_system.admin_password)
    events = http.get(f"/events/aggregate/{user_id}", token=token)
    assert events.status == 200, events.describe()
    stored = events.json()["events"]
    assert stored and all(e["traceparent"].split("-")[1] == trace_id for e in stored), stored
    assert all(e["correlation_id"] == correlation for e in stored), stored

    lines = [
        line
        for line in log_lines(traced_system.log_path)
        if line.get("correlation_id") == correlation
    ]
    assert any(line["logger"] == "uvicorn.access" for line in lines), lines
    assert all(line.get("trace_id") == trace_id for line in lines), lines
