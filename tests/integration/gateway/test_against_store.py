"""Our shapes (/v1) from the gateway in front of a real store_svc (embedded SQLite)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from domain import EMAIL_CLAIM_NAMESPACE, UserCreated, event_to_payload
from tests import auth_support

from .client import fetch, read_lines
from .conftest import RealStore, bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin-1", "admin")


async def _register(store: RealStore, email: str) -> str:
    """Appends a user.created event straight to the store, as command_svc would."""
    user_id = str(uuid.uuid4())
    event = UserCreated(
        aggregate_id=user_id,
        version=1,
        occurred_at=datetime.now(UTC),
        email=email,
        password_hash="$2b$04$abcdefghijklmnopqrstuuJ0123456789abcdefghijklmnopqrstu",
        role="user",
    )
    proposed = pb.ProposedEvent(event_id=str(uuid.uuid4()), event_type=event.EVENT_TYPE)
    proposed.payload.update(event_to_payload(event))
    proposed.claims.add(namespace=EMAIL_CLAIM_NAMESPACE, value=email)
    request = pb.AppendRequest(aggregate_id=user_id, aggregate_type="user", events=[proposed])
    request.no_stream.SetInParent()
    async with grpc.aio.insecure_channel(store.target) as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        await stub.Append(request, timeout=10, metadata=auth_support.service_identity("tests")())
    return user_id


async def test_aggregate_events_answer_our_shape(real_store: RealStore) -> None:
    user_id = await _register(real_store, "first@example.com")
    reply = await fetch(f"{real_store.gateway.v1}/events/aggregate/{user_id}", headers=ADMIN)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert set(body) == {"aggregate_id", "events", "count"}
    assert body["aggregate_id"] == user_id
    assert body["count"] == 1
    (event,) = body["events"]
    assert event["event_type"] == "user.created"
    assert event["version"] == 1
    assert isinstance(event["position"], int)
    assert event["timestamp"].endswith("Z")
    assert event["payload"]["email"] == "first@example.com"
    assert "$2b$" not in reply.body.decode()  # the hash never leaves the store


async def test_count_is_a_number(real_store: RealStore) -> None:
    await _register(real_store, "counted@example.com")
    reply = await fetch(f"{real_store.gateway.v1}/events/count", headers=ADMIN)
    assert reply.status == 200
    assert isinstance(reply.json()["count"], int)
    assert reply.json()["count"] >= 1
    typed = await fetch(
        f"{real_store.gateway.v1}/events/count?event_type=user.deactivated", headers=ADMIN
    )
    assert typed.json() == {"count": 0}


async def test_time_travel_from_query_parameters(real_store: RealStore) -> None:
    user_id = await _register(real_store, "traveller@example.com")
    url = f"{real_store.gateway.v1}/replay/user/{user_id}/state-at"
    now = await fetch(f"{url}?timestamp=2999-01-01T00:00:00Z", headers=ADMIN)
    assert now.status == 200, now.body
    assert now.json()["state"]["email"] == "traveller@example.com"
    assert now.json()["state"]["status"] == "active"
    by_version = await fetch(f"{url}?version=1", headers=ADMIN)
    assert by_version.json()["events_replayed"] == 1
    bad = await fetch(f"{url}?timestamp=notatime", headers=ADMIN)
    assert bad.status == 400
    assert bad.json()["code"] == "INVALID_ARGUMENT"
    assert bad.json()["error"].startswith("timestamp:")


async def test_store_validation_errors_stay_400(real_store: RealStore) -> None:
    too_many = await fetch(f"{real_store.gateway.v1}/events?limit=5000", headers=ADMIN)
    assert too_many.status == 400
    assert too_many.json()["code"] == "INVALID_ARGUMENT"
    assert "limit" in too_many.json()["error"]
    not_uuid = await fetch(f"{real_store.gateway.v1}/events/aggregate/abc", headers=ADMIN)
    assert not_uuid.status == 400
    assert "aggregate_id" in not_uuid.json()["error"]


async def test_unknown_user_is_404(real_store: RealStore) -> None:
    reply = await fetch(f"{real_store.gateway.v1}/replay/user/{uuid.uuid4()}/state", headers=ADMIN)
    assert reply.status == 404
    assert reply.json()["code"] == "NOT_FOUND"


async def test_create_snapshot_is_201(real_store: RealStore) -> None:
    user_id = await _register(real_store, "snap@example.com")
    reply = await fetch(
        f"{real_store.gateway.v1}/snapshots/{user_id}", method="POST", headers=ADMIN
    )
    assert reply.status == 201, reply.body
    assert reply.json()["snapshot"]["version"] == 1
    latest = await fetch(f"{real_store.gateway.v1}/snapshots/{user_id}", headers=ADMIN)
    assert latest.json()["snapshot"]["state"]["email"] == "snap@example.com"


async def test_subscribe_streams_events_as_ndjson(real_store: RealStore) -> None:
    user_id = await _register(real_store, "streamed@example.com")
    status, headers, lines = await read_lines(
        f"{real_store.gateway.v1}/events/subscribe?heartbeat_seconds=1",
        headers=ADMIN,
        count=50,
        until=lambda line: user_id.encode() in line,
    )
    assert status == 200
    assert headers["content-type"] == "application/x-ndjson"
    messages = [json.loads(line) for line in lines]
    ours = [m["event"] for m in messages if "event" in m and m["event"]["aggregate_id"] == user_id]
    assert ours and ours[0]["event_type"] == "user.created"
    assert isinstance(ours[0]["position"], int)
