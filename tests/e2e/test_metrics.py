"""Operators' view: each service's /metrics has the gRPC ecosystem's names and
labels, HTTP server metrics on the gateway, the counters operators alert on,
and each gauge only where it is known.

Most checks scrape the four services run as separate processes (as
docker-compose runs them, each with its own ``METRICS_PORT``); one scrapes
``make up``'s gateway, which shows the whole process.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.http_client import HttpClient
from tests.e2e.separate_services import SeparateServices, separate_services
from tests.e2e.support import register

pytestmark = pytest.mark.e2e

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "cqrs-users.json"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeparateServices]:
    broker = os.environ.get("KAFKA_BROKER", "")
    with separate_services(tmp_path_factory.mktemp("separate"), kafka_broker=broker) as running:
        http = HttpClient(running.http_port, BodyLog(), prefix="/v1")
        user = register(http, "metrics")
        wrong = http.post("/login", json_body={"email": user.email, "password": "not-it-1234"})
        assert wrong.status == 401, wrong.describe()
        yield running


def samples(text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it was exported with."""
    found: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', rest.partition("}")[0])) if rest else {}
        found.setdefault(name.split(" ")[0], []).append(labels)
    return found


def handled(scrape: dict[str, list[dict[str, str]]], service: str, method: str) -> bool:
    return any(
        s.get("grpc_service") == service
        and s.get("grpc_method") == method
        and s.get("grpc_code") == "OK"
        and s.get("grpc_type") == "unary"
        for s in scrape.get("grpc_server_handled_total", [])
    )


def test_grpc_services_export_the_ecosystem_names_and_labels(services: SeparateServices) -> None:
    store = samples(services.scrape("store_svc"))
    command = samples(services.scrape("command_svc"))
    query = samples(services.scrape("query_svc"))
    assert handled(command, "cqrs.command.v1.CommandService", "Register")
    assert any(
        handled(store, "cqrs.eventstore.v1.EventStoreService", m)
        for m in ("Append", "AppendStream")
    )
    for scrape in (store, command, query):
        for name in ("grpc_server_started_total", "grpc_server_handling_seconds_bucket"):
            assert scrape[name] and all(set(GRPC_LABELS) <= set(s) for s in scrape[name]), name
        assert all(
            set(s) == {*GRPC_LABELS, "grpc_code"} for s in scrape["grpc_server_handled_total"]
        )
        assert scrape["build_info"][0].keys() >= {"version", "python"}
    assert "store_append_batch_events_count" in store
    assert store["store_leader"]
    assert {"reason": "invalid_credentials"} in query["query_login_failures_total"]
    for gauge in ("query_projector_lag_positions", "query_projector_lag_seconds"):
        assert gauge in query and gauge not in store and gauge not in command, gauge
    if os.environ.get("KAFKA_BROKER"):
        assert "store_relay_lag_positions" in store
    assert "query_projector_errors_total" in query and "store_relay_errors_total" in store


def test_the_gateway_exports_http_metrics_and_no_gauge_it_cannot_know(
    services: SeparateServices,
) -> None:
    gateway = samples(services.scrape("gateway"))
    requests = gateway["http_server_request_duration_seconds_count"]
    assert {
        "http_request_method": "POST",
        "http_route": "/v1/register",
        "http_response_status_code": "201",
    } in requests
    assert {
        "http_request_method": "POST",
        "http_route": "/v1/login",
        "http_response_status_code": "401",
    } in requests
    assert "http_server_active_requests" in gateway
    assert not any(
        name.endswith("lag_positions") or name.endswith("lag_seconds") for name in gateway
    )


def queried_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, groupings,
    ranges and function names left out)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    keywords = {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}
    return {n for n in names if n not in keywords and not n.isdigit()}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_every_metric_the_dashboard_queries_is_exported(services: SeparateServices) -> None:
    if not os.environ.get("KAFKA_BROKER"):
        pytest.skip("the relay's lag needs Kafka (make test sets KAFKA_BROKER)")
    exported: set[str] = set()
    for service in ("store_svc", "command_svc", "query_svc", "gateway"):
        exported |= set(samples(services.scrape(service)))
    queries = dashboard_queries()
    assert queries
    missing = {m for q in queries for m in queried_metrics(q)} - exported
    assert not missing, f"the dashboard queries metrics no service exports: {sorted(missing)}"


def test_make_ups_gateway_shows_the_whole_process(http: HttpClient) -> None:
    register(http, "metrics-all")
    response = http.root.get("/metrics")
    assert response.status == 200, response.describe()
    scrape = samples(response.body.decode())
    assert handled(scrape, "cqrs.command.v1.CommandService", "Register")
    assert "query_projector_lag_positions" in scrape
    assert "http_server_request_duration_seconds_bucket" in scrape
