"""query_svc.kafka_source's pure parts: position order back, safe resume offsets, decoding."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from hypothesis import given, settings
from hypothesis import strategies as st

from query_svc.kafka_source import CONTENT_TYPE, OffsetTracker, Reorder, decode_record
from service_kit.timeconv import utcnow
from store_svc import engine
from store_svc.relay import CONTENT_TYPE as RELAY_CONTENT_TYPE
from store_svc.relay import kafka_message
from tests.unit.query_svc.events import Log, new_id

pytestmark = pytest.mark.unit


def test_both_services_agree_on_the_content_type() -> None:
    assert CONTENT_TYPE == RELAY_CONTENT_TYPE


def test_reorder_releases_in_position_order_and_drops_repeats() -> None:
    log = Log()
    users = [new_id() for _ in range(3)]
    events = [log.created(u, f"{i}@example.com") for i, u in enumerate(users)]
    events += [log.login(u) for u in users]
    reorder = Reorder(after=0)
    for event in (events[2], events[4], events[2]):
        reorder.push(event)
    assert reorder.pop_ready() == []
    assert (reorder.size, reorder.first_held) == (2, 3)
    reorder.push(events[0])
    assert [e.position for e in reorder.pop_ready()] == [1]
    reorder.push(events[1])
    assert [e.position for e in reorder.pop_ready()] == [2, 3]
    reorder.push(events[0])  # at or below `last`: a repeat
    reorder.push(events[3])
    assert [e.position for e in reorder.pop_ready()] == [4, 5]
    assert (reorder.last, reorder.size, reorder.first_held) == (5, 0, None)


def test_reorder_starts_after_the_checkpoint() -> None:
    log = Log()
    user = new_id()
    events = [log.created(user, "a@example.com"), log.login(user), log.login(user)]
    reorder = Reorder(after=2)
    for event in events:
        reorder.push(event)
    assert [e.position for e in reorder.pop_ready()] == [3]


def test_safe_offsets_stop_at_the_first_record_above_the_checkpoint() -> None:
    tracker = OffsetTracker({0: 10, 1: 0})
    for offset, position in [(10, 1), (11, 4), (12, 2), (13, 6)]:  # 12: a re-sent tail
        tracker.seen(0, offset, position)
    tracker.seen(1, 0, 3)
    assert tracker.safe_offsets(0) == ({0: 10, 1: 0}, 0)
    assert tracker.safe_offsets(3) == ({0: 11, 1: 1}, 3)
    assert tracker.safe_offsets(5) == ({0: 13, 1: 1}, 5)
    assert tracker.safe_offsets(6) == ({0: 14, 1: 1}, 6)
    # A checkpoint that went back: the offsets hold for the highest one seen.
    assert tracker.safe_offsets(2) == ({0: 14, 1: 1}, 6)


def test_an_unread_partition_resumes_where_reading_started() -> None:
    assert OffsetTracker({0: 7, 2: 0}).safe_offsets(100) == ({0: 7, 2: 0}, 100)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=1, max_value=4),
    st.lists(st.integers(min_value=0, max_value=60), max_size=4),
    st.randoms(use_true_random=False),
)
def test_resuming_from_safe_offsets_never_misses_a_position(
    events: int, partitions: int, crashes: list[int], rng: random.Random
) -> None:
    """Relay: positions in order, re-sent from an earlier point after each "crash";
    keys spread over partitions. Consumer: reads partitions in any interleaving.
    From the safe offsets at any committed position C, every position above C
    is still ahead in some partition."""
    partition_of = {p: rng.randrange(partitions) for p in range(1, events + 1)}
    published: list[int] = []
    start = 1
    for crash in sorted(c for c in crashes if c < events):
        published += range(start, events + 1)[: max(crash - start + 1, 0)]
        start = max(1, crash - rng.randrange(5))  # resume from an older durable position
    published += range(start, events + 1)
    logs: dict[int, list[int]] = defaultdict(list)
    for position in published:
        logs[partition_of[position]].append(position)

    tracker = OffsetTracker({p: 0 for p in range(partitions)})
    cursor = dict.fromkeys(range(partitions), 0)
    read: list[int] = []
    committed = 0
    while any(cursor[p] < len(logs[p]) for p in range(partitions)):
        p = rng.choice([q for q in range(partitions) if cursor[q] < len(logs[q])])
        position = logs[p][cursor[p]]
        tracker.seen(p, cursor[p], position)
        read.append(position)
        cursor[p] += 1
        # The checkpoint never goes back; it may pass what Kafka delivered
        # (positions filled from the store).
        committed = rng.randrange(committed, events + 1)
        safe, _ = tracker.safe_offsets(committed)
        ahead = {pos for q in range(partitions) for pos in logs[q][safe[q] :]}
        assert set(range(committed + 1, events + 1)) <= ahead


def test_decode_record_accepts_relay_records_only() -> None:
    event = pb.Event(
        position=7,
        event_id=new_id(),
        aggregate_id=new_id(),
        aggregate_type="user",
        version=2,
        event_type="user.login.recorded",
    )
    event.timestamp.FromSeconds(1_700_000_000)
    event.payload.update({"client_address": "10.0.0.1"})
    value = event.SerializeToString()
    header = [("content-type", CONTENT_TYPE.encode())]
    decoded = decode_record(value, header)
    assert decoded is not None
    assert (decoded.position, decoded.version, decoded.payload) == (
        7,
        2,
        {"client_address": "10.0.0.1"},
    )
    assert decode_record(value, []) is not None  # no header: judged by the bytes
    assert decode_record(value, [("content-type", b"application/json")]) is None
    assert decode_record(b"\xff\x00garbage", header) is None
    assert decode_record(None, header) is None
    assert decode_record(pb.Event(aggregate_id="x").SerializeToString(), header) is None


def test_the_trace_context_travels_in_the_message_headers() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    record = engine.RecordedEvent(
        position=3,
        event_id=new_id(),
        aggregate_id=new_id(),
        aggregate_type="user",
        version=1,
        event_type="user.created",
        timestamp=utcnow(),
        payload=b'{"email":"a@example.com"}',
        correlation_id="corr",
        causation_id="cause",
        traceparent=traceparent,
    )
    message = kafka_message(record)
    assert ("traceparent", traceparent.encode()) in message.headers
    decoded = decode_record(message.value, message.headers)
    assert decoded is not None and decoded.traceparent == traceparent
    untraced = kafka_message(record._replace(traceparent=""))
    assert all(name != "traceparent" for name, _ in untraced.headers)
