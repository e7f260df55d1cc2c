"""KafkaEventSource over a fake consumer: order, repeats, gaps filled from the store, resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf import json_format

from query_svc.db import LIVE, Database
from query_svc.kafka_source import (
    CONTENT_TYPE,
    KafkaEventSource,
    OffsetStore,
    Record,
)
from query_svc.settings import QuerySettings
from query_svc.source import Checkpoint, SourceItem, StoredEvent
from service_kit.timeconv import to_timestamp
from tests.unit.query_svc.events import Log, new_id

pytestmark = pytest.mark.unit
TOPIC = "user-events"


def as_record(event: StoredEvent, partition: int, offset: int) -> Record:
    message = pb.Event(
        position=event.position,
        event_id=event.event_id,
        aggregate_id=event.aggregate_id,
        aggregate_type="user",
        version=event.version,
        event_type=event.event_type,
        timestamp=to_timestamp(event.occurred_at),
    )
    json_format.ParseDict(dict(event.payload), message.payload)
    return Record(
        partition, offset, message.SerializeToString(), [("content-type", CONTENT_TYPE.encode())]
    )


class FakeConsumer:
    """Partitions as lists of records; ``fetch`` hands out a few at a time."""

    def __init__(self, logs: dict[int, list[StoredEvent]]) -> None:
        self.logs = {p: [as_record(e, p, i) for i, e in enumerate(es)] for p, es in logs.items()}
        self.cursor: dict[int, int] = {}
        self.starts: dict[int, int] = {}
        self.commits: list[dict[int, int]] = []
        self.stopped = False

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    async def partitions(self, topic: str) -> list[int]:
        return sorted(self.logs)

    async def assign(self, topic: str, starts: Mapping[int, int | None]) -> dict[int, int]:
        self.cursor = {p: 0 if o is None else o for p, o in starts.items()}
        self.starts = dict(self.cursor)
        return dict(self.cursor)

    async def fetch(self, *, wait: float, max_records: int) -> list[Record]:
        out: list[Record] = []
        for p in sorted(self.logs, reverse=True):  # later partitions first: out of order
            take = self.logs[p][self.cursor[p] : self.cursor[p] + 2]
            self.cursor[p] += len(take)
            out += take
        if not out:
            await asyncio.sleep(wait)
        return out

    async def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        self.commits.append(dict(offsets))


class StoreFallback:
    """The store's subscription: every event after a position, from a fixed log."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self.log = list(events)
        self.reads: list[int] = []

    async def events(self, *, from_position: int) -> AsyncIterator[SourceItem]:
        self.reads.append(from_position)
        for event in self.log:
            if event.position > from_position:
                yield event
        await asyncio.Event().wait()

    async def head_position(self) -> int:
        return len(self.log)


def history(users: int = 4) -> list[StoredEvent]:
    log = Log()
    ids = [new_id() for _ in range(users)]
    events = [log.created(u, f"u{i}@example.com") for i, u in enumerate(ids)]
    events += [log.login(u) for u in ids for _ in range(2)]
    return events


def by_partition(
    events: Sequence[StoredEvent], partitions: int = 3
) -> dict[int, list[StoredEvent]]:
    logs: dict[int, list[StoredEvent]] = {p: [] for p in range(partitions)}
    keys = sorted({e.aggregate_id for e in events})
    for event in events:
        logs[keys.index(event.aggregate_id) % partitions].append(event)
    return logs


@pytest.fixture
async def offsets(tmp_path: Path) -> AsyncIterator[OffsetStore]:
    settings = QuerySettings.from_env({"DATA_DIR": str(tmp_path), "QUERY_DB_BACKEND": "sqlite"})
    db = Database.from_settings(settings)
    await db.ensure_schema()
    yield OffsetStore(db)
    await db.close()


def source(
    consumer: FakeConsumer, fallback: StoreFallback, offsets: OffsetStore, **options: float
) -> KafkaEventSource:
    return KafkaEventSource(
        consumer_factory=lambda: consumer,
        topic=TOPIC,
        offsets=offsets,
        fallback=fallback,
        poll_timeout=0.01,
        **options,  # type: ignore[arg-type]
    )


async def take(items: AsyncIterator[SourceItem], count: int) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    async with asyncio.timeout(5):
        async for item in items:
            if isinstance(item, StoredEvent):
                out.append(item)
                if len(out) == count:
                    break
    await items.aclose()  # type: ignore[attr-defined]
    return out


async def test_yields_every_position_once_in_order(offsets: OffsetStore) -> None:
    events = history()
    logs = by_partition(events)
    logs[0] = logs[0] + logs[0][:2]  # a relay crash re-sent a tail
    consumer = FakeConsumer(logs)
    got = await take(source(consumer, StoreFallback(events), offsets).events(from_position=0), 12)
    assert [e.position for e in got] == list(range(1, 13))
    assert got == events
    assert consumer.stopped


async def test_starts_after_from_position(offsets: OffsetStore) -> None:
    events = history()
    src = source(FakeConsumer(by_partition(events)), StoreFallback(events), offsets)
    got = await take(src.events(from_position=5), 7)
    assert [e.position for e in got] == list(range(6, 13))


async def test_a_position_missing_from_kafka_is_read_from_the_store(offsets: OffsetStore) -> None:
    events = history()
    logs = by_partition(events)
    missing = logs[1].pop(0)  # e.g. removed by retention
    fallback = StoreFallback(events)
    src = source(FakeConsumer(logs), fallback, offsets, gap_timeout=0.05)
    got = await take(src.events(from_position=0), 12)
    assert [e.position for e in got] == list(range(1, 13))
    assert fallback.reads == [missing.position - 1]
    assert src.filled_from_store == 1


async def test_idle_source_sends_heartbeats(offsets: OffsetStore) -> None:
    src = source(FakeConsumer({0: []}), StoreFallback([]), offsets, heartbeat=0.05)
    items = src.events(from_position=0)
    async with asyncio.timeout(5):
        first = await anext(items)
    await items.aclose()  # type: ignore[attr-defined]
    assert first == Checkpoint(0)


async def test_resumes_from_saved_offsets_only_if_they_hold_for_the_checkpoint(
    offsets: OffsetStore,
) -> None:
    events = history()
    logs = by_partition(events)
    consumer = FakeConsumer(logs)
    src = source(consumer, StoreFallback(events), offsets, save_interval=0.0)
    await take(src.events(from_position=0), 12)
    # Nothing was committed to the read model: offsets hold for checkpoint 0.
    assert {p: o.next_offset for p, o in (await offsets.load(TOPIC)).items()} == dict.fromkeys(
        logs, 0
    )

    async with offsets._db.write() as conn:
        await conn.execute(LIVE.checkpoints.update().values(position=6))
    consumer = FakeConsumer(logs)
    src = source(consumer, StoreFallback(events), offsets, save_interval=0.0)
    got = await take(src.events(from_position=6), 6)
    assert [e.position for e in got] == list(range(7, 13))
    saved = await offsets.load(TOPIC)
    assert {o.position for o in saved.values()} == {6}
    expected = {
        p: next((i for i, e in enumerate(es) if e.position > 6), len(es)) for p, es in logs.items()
    }
    assert {p: o.next_offset for p, o in saved.items()} == expected
    assert consumer.commits and consumer.commits[-1] == expected

    # A restart at 6 skips what is before; a read model reset to 0 starts over.
    consumer = FakeConsumer(logs)
    await take(source(consumer, StoreFallback(events), offsets).events(from_position=6), 1)
    assert consumer.starts == expected
    consumer = FakeConsumer(logs)
    got = await take(source(consumer, StoreFallback(events), offsets).events(from_position=0), 12)
    assert consumer.starts == dict.fromkeys(logs, 0)
    assert [e.position for e in got] == list(range(1, 13))
