"""store_svc through grpcurl, a real outside gRPC client using reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service_kit.auth import ROLE_ADMIN, ROLE_SERVICE
from tests.auth_support import token
from tests.integration.store_svc.conftest import store_env
from tests.integration.store_svc.process import StoreProcess, free_port

pytestmark = pytest.mark.e2e

GRPCURL = shutil.which("grpcurl") or str(Path(__file__).parents[2] / ".venv/bin/grpcurl")


@pytest.fixture
async def store_port(tmp_path: Path) -> AsyncIterator[int]:
    proc = StoreProcess(store_env("sqlite", tmp_path), free_port(), tmp_path / "store.log")
    proc.start()
    try:
        await proc.wait_serving()
        yield proc.port
    finally:
        proc.terminate()


def grpcurl(port: int, *args: str, data: dict[str, object] | None = None, as_role: str = "") -> str:
    cmd = [GRPCURL, "-plaintext"]
    if as_role:
        cmd += ["-H", f"authorization: Bearer {token('grpcurl-test', as_role)}"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    cmd += [f"127.0.0.1:{port}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_list_describe_health(store_port: int) -> None:
    services = grpcurl(store_port, "list").split()
    assert "cqrs.eventstore.v1.EventStoreService" in services
    assert "grpc.health.v1.Health" in services
    described = grpcurl(store_port, "describe", "cqrs.eventstore.v1.EventStoreService")
    # Comments come through reflection, so users see the contract's documentation.
    assert "Appends events to one aggregate's stream" in described
    message = grpcurl(store_port, "describe", "cqrs.eventstore.v1.UserState")
    assert "never carries a password hash" in message
    health = json.loads(grpcurl(store_port, "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"


async def test_append_and_time_travel_with_grpcurl(store_port: int) -> None:
    user_id = str(uuid.uuid4())
    appended = json.loads(
        grpcurl(
            store_port,
            "cqrs.eventstore.v1.EventStoreService/Append",
            as_role=ROLE_SERVICE,
            data={
                "aggregate_id": user_id,
                "aggregate_type": "user",
                "no_stream": {},
                "events": [
                    {
                        "event_id": str(uuid.uuid4()),
                        "event_type": "user.created",
                        "payload": {
                            "email": "grpcurl@example.com",
                            "password_hash": "$2b$04$" + "y" * 53,
                            "role": "user",
                        },
                        "claims": [{"namespace": "user.email", "value": "grpcurl@example.com"}],
                    }
                ],
            },
        )
    )
    assert appended["version"] == 1
    state = json.loads(
        grpcurl(
            store_port,
            "cqrs.eventstore.v1.EventStoreService/GetStateAt",
            as_role=ROLE_ADMIN,
            data={"aggregate_id": user_id, "timestamp": "2999-01-01T00:00:00Z"},
        )
    )
    assert state["state"]["email"] == "grpcurl@example.com"
    events = grpcurl(
        store_port,
        "cqrs.eventstore.v1.EventStoreService/GetAggregateEvents",
        as_role=ROLE_ADMIN,
        data={"aggregate_id": user_id},
    )
    assert "$2b$" not in events and "[REDACTED]" in events
