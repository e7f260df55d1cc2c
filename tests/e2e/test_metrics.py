"""Operators' view: /metrics shows RPC latency by method and code, batches and lag."""

from __future__ import annotations

import pytest

from tests.e2e.http_client import HttpClient
from tests.e2e.support import register

pytestmark = pytest.mark.e2e


def test_metrics_cover_every_service(http: HttpClient) -> None:
    register(http, "metrics")  # at least one command, one append, one projection
    response = http.root.get("/metrics")
    assert response.status == 200, response.describe()
    text = response.body.decode()
    for service in (
        "cqrs.eventstore.v1.EventStoreService",
        "cqrs.command.v1.CommandService",
    ):
        assert 'rpc_server_handled_seconds_count{code="OK",method=' in text
        assert f'service="{service}"' in text
    assert 'method="Register",service="cqrs.command.v1.CommandService"' in text
    assert "store_append_batch_events_count" in text
    assert "query_projector_lag_positions" in text
    assert "query_projector_lag_seconds" in text
