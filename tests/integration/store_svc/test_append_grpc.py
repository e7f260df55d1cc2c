"""Appends through the real gRPC API: concurrency, idempotency, claims, errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

import domain
from store_svc.app import StoreService
from tests.integration.store_svc.support import (
    FAKE_HASH,
    StoreStub,
    append_request,
    created,
    register,
)

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


def email_changed(user_id: str, version: int, old: str, new: str) -> domain.EmailChanged:
    return domain.EmailChanged(
        aggregate_id=user_id,
        version=version,
        occurred_at=datetime.now(UTC),
        old_email=old,
        new_email=new,
    )


async def test_fifty_concurrent_appends_at_one_version_one_wins(store: Store) -> None:
    _, stub = store
    user_id = await register(stub, "race@example.com")

    async def attempt(i: int) -> grpc.StatusCode:
        req = append_request(
            user_id,
            [email_changed(user_id, 2, "race@example.com", f"r{i}@example.com")],
            exact=1,
        )
        try:
            await stub.Append(req, timeout=20)
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.ABORTED, e.details()
            assert "1" in (e.details() or "") and "2" in (e.details() or "")
            return e.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(attempt(i) for i in range(50)))
    assert codes.count(grpc.StatusCode.OK) == 1
    assert codes.count(grpc.StatusCode.ABORTED) == 49
    events = await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=user_id))
    assert [e.version for e in events.events] == [1, 2]


async def test_five_hundred_appends_over_twenty_streams_are_gapless(store: Store) -> None:
    _, stub = store
    users = [str(uuid.uuid4()) for _ in range(20)]

    async def write_stream(user_id: str) -> None:
        # 25 appends per stream, each at ANY (concurrent with the other streams).
        await stub.Append(
            append_request(user_id, [created(user_id, f"{user_id}@example.com")], exact=0),
            timeout=20,
        )
        for v in range(2, 26):
            login = domain.LoginRecorded(
                aggregate_id=user_id, version=v, occurred_at=datetime.now(UTC), client_address=""
            )
            await stub.Append(append_request(user_id, [login], exact=None), timeout=20)

    await asyncio.gather(*(write_stream(u) for u in users))
    positions: list[int] = []
    after = 0
    while True:
        page = await stub.ListEvents(pb.ListEventsRequest(after_position=after, limit=1000))
        positions.extend(e.position for e in page.events)
        if page.next_after_position == 0:
            break
        after = page.next_after_position
    assert positions == list(range(1, 501))
    for user_id in users:
        events = await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=user_id))
        assert [e.version for e in events.events] == list(range(1, 26))
    count = await stub.CountEvents(pb.CountEventsRequest())
    assert count.count == 500


async def test_twenty_concurrent_claims_of_one_email_one_wins(store: Store) -> None:
    _, stub = store

    async def attempt() -> grpc.StatusCode:
        try:
            await register(stub, "Same@Example.com".lower())
        except grpc.aio.AioRpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    codes = await asyncio.gather(*(attempt() for _ in range(20)))
    assert codes.count(grpc.StatusCode.OK) == 1
    assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == 19


async def test_retried_append_is_idempotent(store: Store) -> None:
    _, stub = store
    user_id = str(uuid.uuid4())
    req = append_request(user_id, [created(user_id, "idem@example.com")], exact=0)
    first = await stub.Append(req, timeout=10)
    again = await stub.Append(req, timeout=10)
    assert again.idempotent and not first.idempotent
    assert list(again.positions) == list(first.positions)
    assert (await stub.CountEvents(pb.CountEventsRequest(aggregate_id=user_id))).count == 1


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: setattr(r, "aggregate_id", "not-a-uuid"), "aggregate_id"),
        (lambda r: r.ClearField("expected_version"), "expected_version"),
        (lambda r: setattr(r.events[0], "event_type", "user.exploded"), "events[0].event_type"),
        (lambda r: setattr(r.events[0], "event_id", "x"), "events[0].event_id"),
        (lambda r: r.ClearField("events"), "events"),
        (lambda r: setattr(r, "exact", -3), "exact"),
    ],
)
async def test_bad_append_is_invalid_argument_naming_the_field(
    store: Store, mutate: object, field: str
) -> None:
    _, stub = store
    user_id = str(uuid.uuid4())
    req = append_request(user_id, [created(user_id, "bad@example.com")], exact=0)
    assert callable(mutate)
    mutate(req)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Append(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field)


async def test_reads_validate_and_report_not_found(store: Store) -> None:
    _, stub = store
    cases: list[tuple[Awaitable[object], str]] = [
        (stub.ListEvents(pb.ListEventsRequest(limit=1001)), "limit"),
        (stub.ListEvents(pb.ListEventsRequest(aggregate_id="nope")), "aggregate_id"),
        (stub.GetState(pb.GetStateRequest(aggregate_id="123")), "aggregate_id"),
        (stub.ReplayEvents(pb.ReplayEventsRequest()), "since"),
        (stub.GetStateAt(pb.GetStateAtRequest(aggregate_id=str(uuid.uuid4()))), "point"),
    ]
    for call, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert (err.value.details() or "").startswith(field)
    missing = str(uuid.uuid4())
    for call in (
        stub.GetState(pb.GetStateRequest(aggregate_id=missing)),
        stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=missing)),
        stub.GetSnapshot(pb.GetSnapshotRequest(aggregate_id=missing)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_password_hash_never_leaves_public_reads(store: Store) -> None:
    _, stub = store
    user_id = await register(stub, "secret@example.com")
    responses = [
        await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=user_id)),
        await stub.ListEvents(pb.ListEventsRequest()),
        await stub.ReadStream(pb.ReadStreamRequest(aggregate_id=user_id)),
        await stub.GetHistory(pb.GetHistoryRequest(aggregate_id=user_id)),
        await stub.GetState(pb.GetStateRequest(aggregate_id=user_id)),
        await stub.CreateSnapshot(pb.CreateSnapshotRequest(aggregate_id=user_id)),
        await stub.GetSnapshot(pb.GetSnapshotRequest(aggregate_id=user_id)),
    ]
    for response in responses:
        assert FAKE_HASH.encode() not in response.SerializeToString()
    # The command side's load is the one read that carries the hash.
    loaded = await stub.LoadAggregate(pb.LoadAggregateRequest(aggregate_id=user_id))
    assert FAKE_HASH.encode() in loaded.SerializeToString()


async def test_correlation_ids_come_from_metadata(store: Store) -> None:
    _, stub = store
    user_id = str(uuid.uuid4())
    await stub.Append(
        append_request(user_id, [created(user_id, "corr@example.com")], exact=0),
        metadata=[("x-correlation-id", "corr-1"), ("x-causation-id", "cmd-9")],
        timeout=10,
    )
    events = await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=user_id))
    assert (events.events[0].correlation_id, events.events[0].causation_id) == ("corr-1", "cmd-9")
