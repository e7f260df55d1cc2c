"""Time travel and snapshots through gRPC agree with the domain's own fold."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf import timestamp_pb2

import domain
from service_kit.timeconv import to_datetime, to_timestamp
from store_svc import convert
from store_svc.app import StoreService
from tests.integration.store_svc.support import FAKE_HASH, StoreStub, append_request, created

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


def scripted(user_id: str) -> list[domain.DomainEvent]:
    """Register, change password, change email, login twice, deactivate."""
    t = datetime(2025, 1, 1, tzinfo=UTC)
    old, new = f"a-{user_id}@example.com", f"a-{user_id}@new.example.com"
    return [
        created(user_id, old),
        domain.PasswordChanged(
            aggregate_id=user_id, version=2, occurred_at=t, password_hash=FAKE_HASH + "2"
        ),
        domain.EmailChanged(
            aggregate_id=user_id,
            version=3,
            occurred_at=t,
            old_email=old,
            new_email=new,
        ),
        domain.LoginRecorded(aggregate_id=user_id, version=4, occurred_at=t, client_address="::1"),
        domain.LoginRecorded(aggregate_id=user_id, version=5, occurred_at=t, client_address="::1"),
        domain.UserDeactivated(aggregate_id=user_id, version=6, occurred_at=t, reason="left"),
    ]


async def write_history(stub: StoreStub) -> tuple[str, list[pb.Event]]:
    user_id = str(uuid.uuid4())
    for i, event in enumerate(scripted(user_id)):
        await stub.Append(append_request(user_id, [event], exact=i), timeout=10)
        await asyncio.sleep(0.01)  # distinct commit times, so each point is addressable
    stored = await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=user_id))
    return user_id, list(stored.events)


def expected_state(user_id: str, stored: list[pb.Event], upto: int) -> pb.UserState:
    """The domain's fold of the first ``upto`` events, with the store's timestamps."""
    script = scripted(user_id)
    events = [
        dataclasses.replace(script[i], occurred_at=to_datetime(e.timestamp))
        for i, e in enumerate(stored[:upto])
    ]
    state = domain.fold(events)
    assert state is not None
    return convert.state_to_pb(state)


async def test_state_at_every_point_equals_the_domain_fold(store: Store) -> None:
    _, stub = store
    user_id, stored = await write_history(stub)
    for i, event in enumerate(stored, start=1):
        want = expected_state(user_id, stored, i)
        by_time = await stub.GetStateAt(
            pb.GetStateAtRequest(aggregate_id=user_id, timestamp=event.timestamp)
        )
        assert by_time.state == want, f"at event {i}"
        assert by_time.events_replayed == i
        by_version = await stub.GetStateAt(pb.GetStateAtRequest(aggregate_id=user_id, version=i))
        assert by_version.state == want
    current = await stub.GetState(pb.GetStateRequest(aggregate_id=user_id))
    assert current.state == expected_state(user_id, stored, len(stored))
    assert current.state.status == 2  # USER_STATUS_DEACTIVATED


async def test_state_before_registration_is_not_found(store: Store) -> None:
    _, stub = store
    user_id, stored = await write_history(stub)
    before = to_timestamp(to_datetime(stored[0].timestamp) - timedelta(seconds=1))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStateAt(pb.GetStateAtRequest(aggregate_id=user_id, timestamp=before))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "did not exist" in (err.value.details() or "")


async def test_not_found_names_the_time_asked_for_not_a_clamped_one(store: Store) -> None:
    _, stub = store
    user_id, _ = await write_history(stub)
    year_one = timestamp_pb2.Timestamp()
    year_one.FromJsonString("0001-01-01T00:00:00Z")  # before what storage holds (1970)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStateAt(pb.GetStateAtRequest(aggregate_id=user_id, timestamp=year_one))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    details = err.value.details() or ""
    assert "did not exist at 0001-01-01T00:00:00" in details, details
    assert "1970" not in details


async def test_history_names_the_fields_each_event_changed(store: Store) -> None:
    _, stub = store
    user_id, _ = await write_history(stub)
    history = await stub.GetHistory(pb.GetHistoryRequest(aggregate_id=user_id))
    assert history.count == 6
    changed = [set(entry.changed_fields) for entry in history.entries]
    assert "password" in changed[1]
    assert "email" in changed[2]
    assert {"login_count", "last_login_at"} <= changed[3]
    assert {"status", "deactivated_at"} <= changed[5]


async def test_compare_lists_every_changed_field(store: Store) -> None:
    _, stub = store
    user_id, stored = await write_history(stub)
    t1: timestamp_pb2.Timestamp = stored[0].timestamp
    t2: timestamp_pb2.Timestamp = stored[-1].timestamp
    result = await stub.CompareStates(
        pb.CompareStatesRequest(aggregate_id=user_id, time1=t1, time2=t2)
    )
    fields = {c.field: (c.before, c.after) for c in result.changes}
    assert fields["password"] == ("unchanged", "changed")
    assert fields["email"] == (f"a-{user_id}@example.com", f"a-{user_id}@new.example.com")
    assert fields["status"] == ("active", "deactivated")
    assert {"version", "login_count", "last_login_at", "deactivated_at", "updated_at"} <= set(
        fields
    )
    assert result.change_count == len(result.changes)


async def test_snapshot_then_newer_events(store: Store) -> None:
    _, stub = store
    user_id, stored = await write_history(stub)
    snap = await stub.CreateSnapshot(pb.CreateSnapshotRequest(aggregate_id=user_id))
    assert (
        snap.snapshot.version == 6 and snap.snapshot.schema_version == domain.STATE_SCHEMA_VERSION
    )
    got = await stub.GetSnapshot(pb.GetSnapshotRequest(aggregate_id=user_id))
    assert got.snapshot.state == snap.snapshot.state
    via = await stub.GetStateFromSnapshot(pb.GetStateFromSnapshotRequest(aggregate_id=user_id))
    assert via.snapshot_used and via.snapshot_version == 6 and via.events_replayed == 0
    full = await stub.GetState(pb.GetStateRequest(aggregate_id=user_id))
    assert via.state == full.state
    # At a time after the snapshot, the snapshot serves; before it, a full fold does.
    at_now = await stub.GetStateAt(
        pb.GetStateAtRequest(aggregate_id=user_id, timestamp=to_timestamp(datetime.now(UTC)))
    )
    assert at_now.state == full.state
    early = await stub.GetStateAt(
        pb.GetStateAtRequest(aggregate_id=user_id, timestamp=stored[1].timestamp)
    )
    assert early.state == expected_state(user_id, stored, 2)


async def test_states_of_every_user_as_of_a_time(store: Store) -> None:
    _, stub = store
    first, stored1 = await write_history(stub)
    cut = stored1[-1].timestamp
    await asyncio.sleep(0.01)
    second, _ = await write_history(stub)
    page = await stub.ListStatesAt(pb.ListStatesAtRequest(timestamp=cut, page_size=1))
    ids = [s.user_id for s in page.states]
    while page.next_page_token:
        page = await stub.ListStatesAt(
            pb.ListStatesAtRequest(timestamp=cut, page_size=1, page_token=page.next_page_token)
        )
        ids.extend(s.user_id for s in page.states)
    assert ids == [first]
    later = await stub.ListStatesAt(
        pb.ListStatesAtRequest(timestamp=to_timestamp(datetime.now(UTC)), page_size=10)
    )
    assert sorted(s.user_id for s in later.states) == sorted([first, second])
