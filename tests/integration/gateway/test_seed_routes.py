"""The seed's routes, unprefixed, answer the seed's wire format (real store, real HTTP).

The same RPCs answer our shape under /v1 (test_against_store.py); here the
unprefixed paths are checked against the seed's keys and types, and the
seed's way with query parameters (unknown ones ignored and named in a
header, empty values absent, the seed's names for our fields).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from domain import EmailChanged
from tests.auth_support import service_identity
from tests.integration.store_svc.support import append_request, created

from .client import fetch
from .conftest import Fakes, RealStore, Running, bearer

pytestmark = pytest.mark.integration

ADMIN = bearer("admin-1", "admin")


async def _user_with_two_events(store: RealStore) -> tuple[str, str, str]:
    """(user id, first email, second email): user.created then user.email.changed."""
    user_id = str(uuid.uuid4())
    first, second = f"{user_id[:8]}-a@example.com", f"{user_id[:8]}-b@example.com"
    changed = EmailChanged(
        aggregate_id=user_id,
        version=2,
        occurred_at=datetime.now(UTC),
        old_email=first,
        new_email=second,
    )
    appends = (
        append_request(user_id, [created(user_id, first)], exact=0),
        append_request(user_id, [changed], exact=1),
    )
    async with grpc.aio.insecure_channel(store.target) as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        for request in appends:
            await stub.Append(request, timeout=10, metadata=service_identity()())
    return user_id, first, second


def _is_seed_event(event: dict[str, object]) -> None:
    assert isinstance(event["id"], str) and event["id"] == event["event_id"]
    assert isinstance(event["event_type"], str)
    assert isinstance(event["aggregate_id"], str)
    assert isinstance(event["version"], int)
    assert isinstance(event["timestamp"], str)
    datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
    assert isinstance(event["payload"], str)
    assert isinstance(json.loads(event["payload"]), dict)


def _is_seed_state(state: dict[str, object], user_id: str) -> None:
    assert state["id"] == user_id
    assert state["status"] in ("active", "deactivated")
    assert isinstance(state["email"], str)
    assert isinstance(state["version"], int)
    assert state["event_count"] == state["version"]
    for key in ("created_at", "updated_at"):
        assert isinstance(state[key], str)


async def test_event_routes_answer_seed_events(real_store: RealStore) -> None:
    user_id, first, _ = await _user_with_two_events(real_store)
    base = real_store.gateway.url
    reply = await fetch(f"{base}/events/aggregate/{user_id}?from_version=0", headers=ADMIN)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert (body["aggregate_id"], body["count"]) == (user_id, 2)
    for event in body["events"]:
        _is_seed_event(event)
    created = json.loads(body["events"][0]["payload"])
    assert created["email"] == first
    assert created["password_hash"] == "[REDACTED]"
    assert "$2b$" not in reply.body.decode()
    onwards = await fetch(f"{base}/events/aggregate/{user_id}?from_version=2", headers=ADMIN)
    assert [e["version"] for e in onwards.json()["events"]] == [2]

    listed = await fetch(f"{base}/events?limit=10&offset=0&aggregate_id={user_id}", headers=ADMIN)
    assert listed.status == 200, listed.body
    assert listed.json()["count"] == 2
    for event in listed.json()["events"]:
        _is_seed_event(event)
    skipped = await fetch(f"{base}/events?offset=1&aggregate_id={user_id}", headers=ADMIN)
    assert [e["version"] for e in skipped.json()["events"]] == [2]

    replayed = await fetch(f"{base}/events/replay?since=2020-01-01T00:00:00Z", headers=ADMIN)
    assert replayed.status == 200, replayed.body
    assert replayed.json()["since"] == "2020-01-01T00:00:00Z"
    assert isinstance(replayed.json()["count"], int)
    for event in replayed.json()["events"]:
        _is_seed_event(event)

    count = await fetch(f"{base}/events/count", headers=ADMIN)
    assert isinstance(count.json()["total_events"], int)
    assert count.json()["total_events"] == count.json()["count"] >= 2


async def test_the_seeds_query_names_and_its_leniency(real_store: RealStore) -> None:
    user_id, _, _ = await _user_with_two_events(real_store)
    base = real_store.gateway.url
    # start_time/end_time are the seed's names for since/until; empty values count as absent.
    windowed = await fetch(
        f"{base}/events?aggregate_id={user_id}&start_time=2000-01-01T00:00:00Z"
        "&end_time=2000-01-02T00:00:00Z&event_type=",
        headers=ADMIN,
    )
    assert windowed.status == 200, windowed.body
    assert windowed.json()["count"] == 0
    # Unknown parameters are ignored, as the seed ignores them, and named in a header.
    lenient = await fetch(f"{base}/events/count?colour=red&page=2&colour=blue", headers=ADMIN)
    assert lenient.status == 200, lenient.body
    assert lenient.headers["x-ignored-query-parameters"] == "colour, page"
    sneaky = await fetch(f"{base}/events/count?a%0d%0aSet-Cookie:%20x=1", headers=ADMIN)
    assert sneaky.status == 200, sneaky.body
    assert sneaky.headers["x-ignored-query-parameters"] == "aSet-Cookie: x"
    assert "set-cookie" not in sneaky.headers
    # A known parameter with a bad value is still refused, naming it.
    bad = await fetch(f"{base}/events?limit=abc", headers=ADMIN)
    assert bad.status == 400
    assert bad.json()["error"].startswith("limit:")
    too_many = await fetch(f"{base}/events?limit=1001", headers=ADMIN)
    assert too_many.status == 400
    # Under /v1 the same unknown parameter is refused.
    strict = await fetch(f"{real_store.gateway.v1}/events/count?colour=red", headers=ADMIN)
    assert strict.status == 400
    assert strict.json()["error"].startswith("colour: unknown query parameter")


async def test_time_travel_routes_answer_seed_states(real_store: RealStore) -> None:
    user_id, first, second = await _user_with_two_events(real_store)
    base = real_store.gateway.url
    state = await fetch(f"{base}/replay/user/{user_id}/state", headers=ADMIN)
    assert state.status == 200, state.body
    body = state.json()
    assert body["user_id"] == user_id
    assert isinstance(body["message"], str)
    _is_seed_state(body["state"], user_id)
    assert (body["state"]["email"], body["state"]["event_count"]) == (second, 2)

    later = "2999-01-01T00:00:00Z"
    at = await fetch(f"{base}/replay/user/{user_id}/state-at?timestamp={later}", headers=ADMIN)
    assert at.status == 200, at.body
    assert (at.json()["user_id"], at.json()["point_in_time"]) == (user_id, later)
    _is_seed_state(at.json()["state"], user_id)
    by_version = await fetch(f"{base}/replay/user/{user_id}/state-at?version=1", headers=ADMIN)
    assert by_version.json()["state"]["email"] == first
    assert by_version.json()["point_in_time"] == by_version.json()["state"]["updated_at"]

    history = await fetch(f"{base}/replay/user/{user_id}/history", headers=ADMIN)
    assert history.status == 200, history.body
    assert history.json()["total_changes"] == 2
    assert [s["email"] for s in history.json()["history"]] == [first, second]
    for step in history.json()["history"]:
        _is_seed_state(step, user_id)
    assert isinstance(history.json()["message"], str)

    compare = await fetch(
        f"{base}/replay/user/{user_id}/compare?time1=2000-01-01T00:00:00Z&time2={later}",
        headers=ADMIN,
    )
    assert compare.status == 404, compare.body  # no state at time1: the seed's 404
    assert compare.json()["code"] == "NOT_FOUND"
    created_at = state.json()["state"]["created_at"]
    by_times = await fetch(
        f"{base}/replay/user/{user_id}/compare?time1={created_at}&time2={later}", headers=ADMIN
    )
    assert by_times.status == 200, by_times.body
    body = by_times.json()
    assert (body["user_id"], body["time1"], body["time2"]) == (user_id, created_at, later)
    _is_seed_state(body["before"], user_id)
    _is_seed_state(body["after"], user_id)
    assert body["changes"]["email"] == {"before": first, "after": second}
    assert all(set(c) == {"before", "after"} for c in body["changes"].values())


async def test_snapshot_routes_answer_the_seeds_keys(real_store: RealStore) -> None:
    user_id, _, second = await _user_with_two_events(real_store)
    base = real_store.gateway.url
    created = await fetch(f"{base}/snapshots/{user_id}", method="POST", headers=ADMIN)
    assert created.status == 201, created.body
    assert created.json()["aggregate_id"] == user_id
    assert isinstance(created.json()["message"], str)
    latest = await fetch(f"{base}/snapshots/{user_id}", headers=ADMIN)
    assert latest.status == 200, latest.body
    assert (latest.json()["aggregate_id"], latest.json()["version"]) == (user_id, 2)
    _is_seed_state(latest.json()["state"], user_id)
    flat = await fetch(f"{base}/snapshots/{user_id}/state", headers=ADMIN)
    assert flat.status == 200, flat.body
    body = flat.json()
    assert (body["aggregate_id"], body["version"], body["email"]) == (user_id, 2, second)
    assert (body["status"], body["event_count"]) == ("active", 2)
    assert isinstance(body["created_at"], str) and isinstance(body["updated_at"], str)


async def test_users_is_a_bare_array_with_go_names(gateway: Running, fakes: Fakes) -> None:
    reply = await fetch(f"{gateway.url}/users", headers=ADMIN)
    assert reply.status == 200, reply.body
    users = reply.json()
    assert isinstance(users, list) and len(users) == 2
    assert users[0]["ID"] == "u-1"
    assert users[0]["Email"] == "u-1@example.com"
    assert users[0]["Status"] == "active"
    assert users[0]["CreatedAt"] == "2025-10-25T19:57:00Z"
    # The seed returned every user: the page is as large as a page can be.
    assert fakes.query.requests["ListUsers"][-1].page_size == 1000
    assert reply.headers["x-next-page-token"] == "u-2"
    last = await fetch(f"{gateway.url}/users?page_token=u-2&page_size=5", headers=ADMIN)
    assert "x-next-page-token" not in last.headers
    assert fakes.query.requests["ListUsers"][-1].page_size == 5
    forbidden = await fetch(f"{gateway.url}/users/forbidden", headers=bearer("u-1", "user"))
    assert forbidden.status == 403
    assert forbidden.json()["code"] == "PERMISSION_DENIED"
