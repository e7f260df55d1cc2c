"""Storage contract, write side: concurrency, claims, idempotency, failures, lock, reopen."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta, timezone

import pytest

from store_svc.engine import (
    AppendResult,
    Claim,
    ClaimTaken,
    DuplicateEventId,
    ExpectedVersion,
    StorageUnavailable,
    StoreClosed,
    WriterLockHeld,
    WrongExpectedVersion,
)
from tests.integration.store_engine.support import (
    T0,
    FaultyStorage,
    Harness,
    at,
    new_event,
    read_everything,
    uid,
)

pytestmark = pytest.mark.integration


async def test_append_then_read_back_exactly(harness: Harness) -> None:
    store = await harness.open()
    stream = f"agg-{uid()}"
    base = store.head_position()
    # +05:30 and a microsecond part: stored as the same instant in UTC, to the microsecond.
    now = (T0 + timedelta(microseconds=123457)).astimezone(timezone(timedelta(hours=5.5)))
    first, second = new_event("a.created", payload=b'{"k":"\xc3\xa9"}'), new_event("a.changed")
    # Payloads are opaque bytes, not necessarily valid UTF-8.
    third = new_event("a.changed", payload=b"\xff\x00raw")

    result = await store.append(
        stream,
        "thing",
        ExpectedVersion.NO_STREAM,
        [first, second],
        now=now,
        correlation_id="corr-1",
        causation_id="cause-1",
    )
    assert result == AppendResult(stream, 2, (base + 1, base + 2), idempotent=False)
    await store.append(stream, "thing", ExpectedVersion.exact(2), [third], now=now)

    events = await store.read_stream(stream)
    assert [(e.version, e.position, e.event_id) for e in events] == [
        (1, base + 1, first.event_id),
        (2, base + 2, second.event_id),
        (3, base + 3, third.event_id),
    ]
    assert [e.payload for e in events] == [first.payload, second.payload, third.payload]
    assert events[0].timestamp == now
    assert events[0].timestamp.utcoffset() == timedelta(0)
    assert (events[0].correlation_id, events[0].causation_id) == ("corr-1", "cause-1")
    assert (events[0].aggregate_type, events[0].event_type) == ("thing", "a.created")
    assert await store.stream_version(stream) == 3
    assert store.head_position() == base + 3


async def test_fifty_concurrent_appends_at_one_version_exactly_one_wins(harness: Harness) -> None:
    store = await harness.open()
    stream = f"agg-{uid()}"
    outcomes = await asyncio.gather(
        *(
            store.append(stream, "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0)
            for _ in range(50)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, AppendResult)]
    losers = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
    assert len(winners) == 1
    assert len(losers) == 49
    assert all(loser.actual == 1 and loser.aggregate_id == stream for loser in losers)
    assert "actual version is 1" in str(losers[0]) and "no stream" in str(losers[0])
    assert len(await store.read_stream(stream)) == 1


async def test_500_concurrent_appends_over_20_streams_are_gapless(harness: Harness) -> None:
    store = await harness.open()
    base = store.head_position()
    streams = [f"agg-{uid()}" for _ in range(20)]
    stored_ids: list[str] = []

    async def append_with_retry(stream: str) -> None:
        # What command_svc does: read the version, append exactly there, retry on conflict.
        event = new_event()
        while True:
            version = await store.stream_version(stream)
            try:
                await store.append(stream, "thing", ExpectedVersion.exact(version), [event], now=T0)
            except WrongExpectedVersion:
                continue
            stored_ids.append(event.event_id)
            return

    await asyncio.gather(*(append_with_retry(streams[i % 20]) for i in range(500)))

    events = await read_everything(store, base)
    assert [e.position for e in events] == list(range(base + 1, base + 501))
    assert len({e.event_id for e in events}) == 500
    assert sorted(e.event_id for e in events) == sorted(stored_ids)
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event.aggregate_id].append(event.version)
    assert set(versions) == set(streams)
    for stream in streams:
        # In position order, each stream's versions run 1..25 without gap or repeat.
        assert versions[stream] == list(range(1, 26))
        assert await store.stream_version(stream) == 25
    assert store.head_position() == base + 500


async def test_one_append_gets_consecutive_versions_and_positions(harness: Harness) -> None:
    store = await harness.open()
    streams = [f"agg-{uid()}" for _ in range(10)]
    results = await asyncio.gather(
        *(
            store.append(s, "thing", ExpectedVersion.ANY, [new_event() for _ in range(5)], now=T0)
            for s in streams
        )
    )
    for result in results:
        first = result.positions[0]
        assert result.positions == tuple(range(first, first + 5))
        assert result.version == 5


async def test_twenty_aggregates_race_for_one_email(harness: Harness) -> None:
    store = await harness.open()
    email = Claim("email", f"{uid()}@example.com")
    users = [f"user-{uid()}" for _ in range(20)]
    outcomes = await asyncio.gather(
        *(
            store.append(
                user,
                "user",
                ExpectedVersion.NO_STREAM,
                [new_event("user.created", claims=[email])],
                now=T0,
            )
            for user in users
        ),
        return_exceptions=True,
    )
    winners = [u for u, o in zip(users, outcomes, strict=True) if isinstance(o, AppendResult)]
    taken = [o for o in outcomes if isinstance(o, ClaimTaken)]
    assert len(winners) == 1 and len(taken) == 19
    owner = winners[0]
    assert all(t.claim == email and t.owner_aggregate_id == owner for t in taken)
    assert email.value in str(taken[0]) and owner in str(taken[0])
    for loser in users:
        if loser != owner:
            assert await store.stream_version(loser) == 0  # a rejected append leaves nothing

    # Re-taking its own claim is fine; a stranger releasing it changes nothing.
    await store.append(owner, "user", ExpectedVersion.exact(1), [new_event(claims=[email])], now=T0)
    stranger = users[1] if users[0] == owner else users[0]
    await store.append(
        stranger, "user", ExpectedVersion.NO_STREAM, [new_event(releases=[email])], now=T0
    )
    with pytest.raises(ClaimTaken):
        await store.append(
            stranger, "user", ExpectedVersion.exact(1), [new_event(claims=[email])], now=T0
        )

    # Release (e.g. an e-mail change), then someone else can take it.
    new_email = Claim("email", f"{uid()}@example.com")
    await store.append(
        owner,
        "user",
        ExpectedVersion.exact(2),
        [new_event("user.email.changed", claims=[new_email], releases=[email])],
        now=T0,
    )
    await store.append(
        stranger, "user", ExpectedVersion.exact(1), [new_event(claims=[email])], now=T0
    )
    with pytest.raises(ClaimTaken) as caught:
        await store.append(
            owner, "user", ExpectedVersion.exact(3), [new_event(claims=[email])], now=T0
        )
    assert caught.value.owner_aggregate_id == stranger

    # Claims are rebuilt from storage at open.
    await store.close()
    reopened = await harness.open()
    third = f"user-{uid()}"
    for claim, holder in ((email, stranger), (new_email, owner)):
        with pytest.raises(ClaimTaken) as caught:
            await reopened.append(
                third, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[claim])], now=T0
            )
        assert caught.value.owner_aggregate_id == holder


async def test_claim_changes_within_one_batch(harness: Harness) -> None:
    # A long batch delay puts all these appends into one batch.
    store = await harness.open(batch_max_delay=0.2)
    email = Claim("email", f"{uid()}@example.com")
    a, b, c = (f"user-{uid()}" for _ in range(3))
    outcomes = await asyncio.gather(
        store.append(a, "user", ExpectedVersion.ANY, [new_event(claims=[email])], now=T0),
        store.append(b, "user", ExpectedVersion.ANY, [new_event(claims=[email])], now=T0),
        store.append(a, "user", ExpectedVersion.ANY, [new_event(releases=[email])], now=T0),
        store.append(c, "user", ExpectedVersion.ANY, [new_event(claims=[email])], now=T0),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], AppendResult)
    assert isinstance(outcomes[1], ClaimTaken) and outcomes[1].owner_aggregate_id == a
    assert isinstance(outcomes[2], AppendResult)
    assert isinstance(outcomes[3], AppendResult)  # freed by the release earlier in the batch
    with pytest.raises(ClaimTaken) as caught:
        await store.append(b, "user", ExpectedVersion.ANY, [new_event(claims=[email])], now=T0)
    assert caught.value.owner_aggregate_id == c


async def test_idempotent_retry_returns_the_original_result(harness: Harness) -> None:
    store = await harness.open()
    stream = f"agg-{uid()}"
    events = [new_event(), new_event()]
    original = await store.append(stream, "thing", ExpectedVersion.NO_STREAM, events, now=T0)
    await store.append(stream, "thing", ExpectedVersion.exact(2), [new_event()], now=T0)
    head = store.head_position()

    retried = await store.append(stream, "thing", ExpectedVersion.NO_STREAM, events, now=at(5))
    assert retried == AppendResult(stream, 2, original.positions, idempotent=True)
    # Also when retried without an expected version.
    assert (await store.append(stream, "thing", ExpectedVersion.ANY, events, now=T0)).idempotent

    assert store.head_position() == head
    assert await store.stream_version(stream) == 3
    assert await store.count(aggregate_id=stream) == 3
    stored = await store.read_stream(stream)
    assert [e.event_id for e in stored[:2]] == [e.event_id for e in events]
    assert stored[0].timestamp == T0  # the retry's timestamp was not written

    # Two identical appends in flight at once (a client retry racing the original).
    twins = [new_event()]
    other = f"agg-{uid()}"
    first, second = await asyncio.gather(
        store.append(other, "thing", ExpectedVersion.NO_STREAM, twins, now=T0),
        store.append(other, "thing", ExpectedVersion.NO_STREAM, twins, now=T0),
    )
    assert first.positions == second.positions
    assert sorted([first.idempotent, second.idempotent]) == [False, True]
    assert await store.count(aggregate_id=other) == 1


async def test_event_id_used_elsewhere_is_rejected(harness: Harness) -> None:
    store = await harness.open()
    stream, other = f"agg-{uid()}", f"agg-{uid()}"
    first, second = new_event(), new_event()
    await store.append(stream, "thing", ExpectedVersion.NO_STREAM, [first, second], now=T0)
    head = store.head_position()

    with pytest.raises(DuplicateEventId) as caught:  # same id, other stream
        await store.append(other, "thing", ExpectedVersion.NO_STREAM, [first], now=T0)
    assert caught.value.event_id == first.event_id and caught.value.aggregate_id == stream
    with pytest.raises(DuplicateEventId):  # same ids, different order
        await store.append(stream, "thing", ExpectedVersion.NO_STREAM, [second, first], now=T0)
    with pytest.raises(DuplicateEventId):  # a stored id plus a new one
        await store.append(stream, "thing", ExpectedVersion.ANY, [second, new_event()], now=T0)
    with pytest.raises(DuplicateEventId):  # repeated within one append
        await store.append(other, "thing", ExpectedVersion.ANY, [first, first], now=T0)
    assert store.head_position() == head
    assert await store.stream_version(other) == 0


async def test_a_retry_batched_with_fresh_appends_gets_its_original_result(
    harness: Harness,
) -> None:
    """Storages that refuse stored ids themselves skip the per-batch id lookup;
    a retry (any expected version) in a batch of fresh appends still gets its
    original result, and the fresh appends beside it are written once."""
    counting = FaultyStorage(harness.storage())
    store = await harness.open(counting, batch_max_delay=0.05)
    stream = f"agg-{uid()}"
    events = [new_event()]
    original = await store.append(stream, "thing", ExpectedVersion.NO_STREAM, events, now=T0)
    lookups = counting.find_calls
    fresh = [f"agg-{uid()}" for _ in range(5)]
    retried, *appended = await asyncio.gather(
        store.append(stream, "thing", ExpectedVersion.ANY, events, now=T0),
        *(
            store.append(s, "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0)
            for s in fresh
        ),
    )
    assert retried == AppendResult(stream, 1, original.positions, idempotent=True)
    assert not any(result.idempotent for result in appended)
    assert sorted(p for result in appended for p in result.positions) == list(
        range(original.positions[0] + 1, original.positions[0] + 6)
    )
    assert await store.stream_version(stream) == 1
    assert counting.unique_event_ids == (harness.backend.name == "sqlite")
    if counting.unique_event_ids:
        # Looked up once, for the batch the storage refused.
        assert counting.find_calls == lookups + 1
        await store.append(
            f"agg-{uid()}", "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0
        )
        assert counting.find_calls == lookups + 1  # fresh appends need no lookup
    else:
        assert counting.find_calls > lookups


async def test_storage_failure_fails_the_whole_batch_and_applies_nothing(
    harness: Harness,
) -> None:
    faulty = FaultyStorage(harness.storage())
    store = await harness.open(faulty, batch_max_delay=0.2)
    email = Claim("email", f"{uid()}@example.com")
    streams = [f"agg-{uid()}" for _ in range(10)]
    await store.append(streams[0], "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0)
    base = store.head_position()
    calls = faulty.write_calls

    faulty.fail_before = 1
    outcomes = await asyncio.gather(
        *(
            store.append(
                s,
                "thing",
                ExpectedVersion.ANY,
                [new_event(claims=[email] if i == 1 else [])],
                now=T0,
            )
            for i, s in enumerate(streams)
        ),
        # Would be rejected on its own; in a failed batch it gets StorageUnavailable too.
        store.append(streams[0], "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0),
        return_exceptions=True,
    )
    assert faulty.write_calls == calls + 1  # one storage call for the whole batch
    assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
    assert "injected" in str(outcomes[0])
    assert store.head_position() == base
    assert await read_everything(store, base) == []
    assert await store.stream_version(streams[0]) == 1
    assert all([await store.stream_version(s) == 0 for s in streams[1:]])

    # Nothing was consumed: positions continue gapless, the claim is free.
    results = await asyncio.gather(
        *(
            store.append(s, "thing", ExpectedVersion.ANY, [new_event(claims=[email])], now=T0)
            for s in streams[1:2]
        ),
        *(store.append(s, "thing", ExpectedVersion.ANY, [new_event()], now=T0) for s in streams),
    )
    positions = sorted(p for r in results for p in r.positions)
    assert positions == list(range(base + 1, base + 1 + len(results)))
    assert [e.position for e in await read_everything(store, base)] == positions


async def test_write_that_landed_but_reported_failure_is_recovered(harness: Harness) -> None:
    faulty = FaultyStorage(harness.storage())
    store = await harness.open(faulty)
    stream = f"agg-{uid()}"
    await store.append(stream, "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0)
    base = store.head_position()
    subscription = store.subscribe(base, heartbeat=60)
    # Let it reach live mode before the failure.
    pending_next = asyncio.ensure_future(anext(subscription))
    await asyncio.sleep(0.05)

    faulty.fail_after = 1
    events = [new_event(), new_event()]
    with pytest.raises(StorageUnavailable):
        await store.append(stream, "thing", ExpectedVersion.exact(1), events, now=T0)
    # The engine reloaded its state: the events are there, so the retry is idempotent.
    assert store.head_position() == base + 2
    assert await store.stream_version(stream) == 3
    retried = await store.append(stream, "thing", ExpectedVersion.exact(1), events, now=T0)
    assert retried == AppendResult(stream, 3, (base + 1, base + 2), idempotent=True)
    after = await store.append(stream, "thing", ExpectedVersion.exact(3), [new_event()], now=T0)
    assert after.positions == (base + 3,)

    # The live subscriber missed no event although the failed batch was never published.
    received = [await asyncio.wait_for(pending_next, 10)]
    for _ in range(2):
        received.append(await asyncio.wait_for(anext(subscription), 10))
    await subscription.aclose()
    assert [getattr(r, "position", None) for r in received] == [base + 1, base + 2, base + 3]


async def test_second_writer_is_refused(harness: Harness) -> None:
    storage = harness.storage()
    store = await harness.open(storage)
    with pytest.raises(WriterLockHeld) as caught:
        await harness.open()  # another storage instance on the same data
    message = str(caught.value)
    assert "another" in message and "writer" in message
    with pytest.raises(WriterLockHeld):
        await harness.open(storage)  # the same instance
    # The refused attempts did not disturb the writer.
    await store.append(f"agg-{uid()}", "thing", ExpectedVersion.ANY, [new_event()], now=T0)

    await store.close()
    successor = await harness.open()
    await successor.append(f"agg-{uid()}", "thing", ExpectedVersion.ANY, [new_event()], now=T0)


async def test_reopen_restores_heads_claims_and_positions(harness: Harness) -> None:
    store = await harness.open()
    email = Claim("email", f"{uid()}@example.com")
    a, b = f"user-{uid()}", f"user-{uid()}"
    await store.append(a, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[email])], now=T0)
    await store.append(b, "user", ExpectedVersion.NO_STREAM, [new_event(), new_event()], now=T0)
    head = store.head_position()
    await store.close()
    with pytest.raises(StoreClosed):
        await store.append(a, "user", ExpectedVersion.ANY, [new_event()], now=T0)

    reopened = await harness.open()
    assert reopened.head_position() == head
    assert (await reopened.stream_version(a), await reopened.stream_version(b)) == (1, 2)
    with pytest.raises(ClaimTaken):
        await reopened.append(
            b, "user", ExpectedVersion.exact(2), [new_event(claims=[email])], now=T0
        )
    with pytest.raises(WrongExpectedVersion):
        await reopened.append(b, "user", ExpectedVersion.exact(1), [new_event()], now=T0)
    result = await reopened.append(b, "user", ExpectedVersion.exact(2), [new_event()], now=T0)
    assert result == AppendResult(b, 3, (head + 1,), idempotent=False)


async def test_empty_append_checks_the_version_only(harness: Harness) -> None:
    store = await harness.open()
    stream = f"agg-{uid()}"
    head = store.head_position()
    assert await store.append(stream, "thing", ExpectedVersion.NO_STREAM, [], now=T0) == (
        AppendResult(stream, 0, (), idempotent=False)
    )
    with pytest.raises(WrongExpectedVersion):
        await store.append(stream, "thing", ExpectedVersion.exact(1), [], now=T0)
    assert store.head_position() == head
