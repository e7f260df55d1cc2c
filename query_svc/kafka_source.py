"""The production event source: the store's Kafka topic, put back in global order.

store_svc's outbox relay publishes every event (key = aggregate id, value =
the unredacted ``cqrs.eventstore.v1.Event``) to a topic of several
partitions, at least once. Kafka keeps order only within a partition, so
events of different aggregates arrive out of global order, and after a
relay crash some arrive twice. :class:`KafkaEventSource` still keeps the
:class:`~query_svc.source.EventSource` contract (every position after
``from_position``, each once, in position order), so the projector, its
checkpoint and its exactly-once proof stay exactly as they are:

* **Reordering.** One consumer reads every partition of the topic (manual
  assignment: a read model needs all of them; ``KAFKA_GROUP`` names it for
  offset commits and monitoring, it is not split across instances). Events
  wait in a bounded buffer (:class:`Reorder`) until the next position
  arrives; positions at or below the last one yielded, and repeats, are
  dropped. Positions are gapless, so a missing one is always known.
* **Gaps are filled from the store, never skipped.** If the next position
  has not come from Kafka ``gap_timeout`` seconds after a later one did (a
  slow partition, a record removed by retention, a bad record), or the
  buffer is full, the missing range is read from the store's subscription
  (``Subscribe`` with the service identity and ``include_secrets``: the
  password hashes are needed by ``auth_projections``; ``ReadStream``
  redacts them). Whatever is late from Kafka afterwards is a repeat.
* **Per-aggregate versions** need no extra rule: events reach the projector
  in global order, hence in version order per aggregate, and
  :func:`query_svc.projection.apply` still treats a version at or below the
  row's as a no-op and refuses a version gap.

How the checkpoint and the per-partition offsets interact. The read model's
checkpoint ``C`` (one global position, committed in the same transaction
as the rows) is the ONLY thing exactly-once rests on: the projector applies
exactly the positions after ``C``. Kafka offsets only decide where reading
starts, so they need only be a safe lower bound: table ``kafka_offsets``
holds, per partition, ``next_offset`` and the checkpoint ``position`` it was
computed against, meaning "every record of this partition before
``next_offset`` has a position <= ``position``". :class:`OffsetTracker`
computes it as the smallest offset read whose position is above the
committed checkpoint (or the next offset to read if there is none); it is
saved every ``save_interval`` seconds, in its own transaction, AFTER
reading ``C`` from the database, so ``position`` <= the checkpoint at any
later time. At start, a partition resumes from its saved offset only if
``position`` <= ``from_position`` (else from its beginning): nothing a
restart needs can be before it. A stale row costs re-reading, never a lost
event; a lost or removed record costs a read from the store, never a
skipped one. The same offsets are committed to Kafka under ``KAFKA_GROUP``
(best effort) so that the usual tools show the consumer's lag.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf.message import DecodeError
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)

from domain import UserErased
from domain.upcasting import upcast
from pii.codec import PayloadCodec
from query_svc.db import LIVE, Database, read_checkpoint
from query_svc.source import Checkpoint, EventSource, SourceItem, StoredEvent
from query_svc.store_source import stored_event

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/x-protobuf; proto=cqrs.eventstore.v1.Event"
"""What store_svc's relay puts in the ``content-type`` header (store_svc.relay)."""

_METADATA = MetaData()
KAFKA_OFFSETS: Final = Table(
    "kafka_offsets",
    _METADATA,
    Column("topic", String(249), nullable=False),
    Column("partition", Integer, nullable=False),
    # Where to resume reading: every record before it has position <= `position`.
    Column("next_offset", BigInteger, nullable=False),
    Column("position", BigInteger, nullable=False),
    PrimaryKeyConstraint("topic", "partition", name="pk_kafka_offsets"),
)
"""Per-partition resume points of the Kafka source (see the module docstring)."""


# -- pure parts ----------------------------------------------------------------------


class Reorder:
    """Restores position order: holds events until every earlier position was released.

    Invariant: :attr:`last` only grows, by one per released event; an event at
    or below it, or already held, is dropped on :meth:`push`.
    """

    def __init__(self, *, after: int) -> None:
        self.last = after
        self._held: dict[int, StoredEvent] = {}
        self._heap: list[int] = []

    def push(self, event: StoredEvent) -> None:
        position = event.position
        if position <= self.last or position in self._held:
            return
        self._held[position] = event
        heapq.heappush(self._heap, position)

    def pop_ready(self) -> list[StoredEvent]:
        """The held events that follow :attr:`last` without a gap, in order."""
        ready: list[StoredEvent] = []
        while self._heap and self._heap[0] == self.last + 1:
            position = heapq.heappop(self._heap)
            ready.append(self._held.pop(position))
            self.last = position
        return ready

    @property
    def size(self) -> int:
        """Events held back, waiting for an earlier position."""
        return len(self._held)

    @property
    def first_held(self) -> int | None:
        """The smallest position held back (so ``last + 1 .. first_held - 1`` is missing)."""
        return self._heap[0] if self._heap else None


class OffsetTracker:
    """Per partition: the offset before which every record read has position <= a checkpoint.

    ``starts`` are the offsets reading began at. :meth:`seen` must be called
    for every record read, in offset order per partition (``position`` 0 for a
    record that is not an event: it is never needed).
    """

    def __init__(self, starts: Mapping[int, int]) -> None:
        self._next = dict(starts)
        self._above: dict[int, deque[tuple[int, int]]] = {p: deque() for p in starts}
        self._floor = 0

    def seen(self, partition: int, offset: int, position: int) -> None:
        self._next[partition] = offset + 1
        self._above.setdefault(partition, deque()).append((offset, position))

    def safe_offsets(self, committed: int) -> tuple[dict[int, int], int]:
        """Where each partition can resume once the read model is at ``committed``.

        Per partition: the smallest offset read whose position is above the
        checkpoint, or the next offset to read if every record read so far is
        at or below it. Records at or below the checkpoint are forgotten, so a
        checkpoint that went back (it should not) is treated as the highest
        one seen, which is returned with the offsets: they hold for it.
        """
        self._floor = max(self._floor, committed)
        out: dict[int, int] = {}
        for partition, records in self._above.items():
            # Offsets grow along the deque: once the leftmost is above the
            # checkpoint it is the smallest such offset.
            while records and records[0][1] <= self._floor:
                records.popleft()
            out[partition] = records[0][0] if records else self._next[partition]
        return out, self._floor


def decode_record(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], codec: PayloadCodec | None = None
) -> StoredEvent | None:
    """The event a relay record holds, or None for a record that is not one.

    The topic carries the stored encoding (personal fields sealed); ``codec``
    opens them (plain text, or "[ERASED]" for an erased user). A
    ``user.erased`` record first drops the cached key of its user: the store
    (another instance of the key store) destroyed it.
    """
    traceparent = ""
    for name, raw in headers:
        if name == "content-type" and raw.decode(errors="replace") != CONTENT_TYPE:
            return None
        if name == "traceparent":  # the trace context travels in the headers
            traceparent = raw.decode(errors="replace")
    if not value:
        return None
    try:
        event = pb.Event.FromString(value)
    except DecodeError:
        return None
    if event.position <= 0 or not event.aggregate_id:
        return None
    stored = stored_event(event)
    if traceparent:
        stored = dataclasses.replace(stored, traceparent=traceparent)
    if codec is None:
        return stored
    if stored.event_type == UserErased.EVENT_TYPE:
        codec.keys.forget(stored.aggregate_id)
    current = upcast(stored.event_type, stored.payload)
    opened = codec.open_event(stored.event_type, current, stored.aggregate_id, reveal_secrets=True)
    return dataclasses.replace(stored, payload=opened)


# -- Kafka and the database ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record, as the source needs it."""

    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Consumer(Protocol):
    """The consumer the source reads through (:class:`AiokafkaConsumer`, or a fake)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids; raises if the topic is unknown."""
        ...

    async def assign(self, topic: str, starts: Mapping[int, int | None]) -> dict[int, int]:
        """Reads ``topic`` from these offsets (None: the partition's first offset);
        returns the offsets reading really starts at."""
        ...

    async def fetch(self, *, wait: float, max_records: int) -> list[Record]:
        """Records read since the last call (waits up to ``wait`` seconds for some)."""
        ...

    async def commit(self, topic: str, offsets: Mapping[int, int]) -> None: ...


class AiokafkaConsumer:
    """:class:`Consumer` over aiokafka: manual assignment, no auto-commit."""

    def __init__(self, *, broker: str, group: str, client_id: str = "query_svc") -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.split(","),
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            # Only for a saved offset that retention has removed since.
            auto_offset_reset="earliest",
            # While the broker is away aiokafka retries (and logs at ERROR) at
            # this pace: 100 ms (the default) floods the log for nothing.
            retry_backoff_ms=500,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def partitions(self, topic: str) -> list[int]:
        # The consumer has no public call that fetches a topic's metadata
        # (AIOKafkaProducer.partitions_for is this same call).
        found = await self._consumer._client._wait_on_metadata(topic)
        return sorted(int(p) for p in found)

    async def assign(self, topic: str, starts: Mapping[int, int | None]) -> dict[int, int]:
        tps = {p: TopicPartition(topic, p) for p in starts}
        self._consumer.assign(list(tps.values()))
        first = await self._consumer.beginning_offsets(list(tps.values()))
        out: dict[int, int] = {}
        for p, tp in tps.items():
            wanted = starts[p]
            # Records before the first offset are gone (retention): start there.
            offset = int(first[tp]) if wanted is None else max(wanted, int(first[tp]))
            self._consumer.seek(tp, offset)
            out[p] = offset
        return out

    async def fetch(self, *, wait: float, max_records: int) -> list[Record]:
        batch = await self._consumer.getmany(timeout_ms=int(wait * 1000), max_records=max_records)
        return [
            Record(tp.partition, r.offset, r.value, list(r.headers or ()))
            for tp, records in batch.items()
            for r in records
        ]

    async def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        await self._consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})


@dataclass(frozen=True, slots=True)
class SavedOffset:
    """A ``kafka_offsets`` row: resume at ``next_offset`` if at or above ``position``."""

    next_offset: int
    position: int


class OffsetStore:
    """``kafka_offsets`` in the read model's database, and the checkpoint beside it."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._ready = False

    async def ensure_table(self) -> None:
        if not self._ready:
            async with self._db.write() as conn:
                await conn.run_sync(_METADATA.create_all, checkfirst=True)
            self._ready = True

    async def load(self, topic: str) -> dict[int, SavedOffset]:
        t = KAFKA_OFFSETS
        async with self._db.read() as conn:
            rows = await conn.execute(
                t.select()
                .with_only_columns(t.c.partition, t.c.next_offset, t.c.position)
                .where(t.c.topic == topic)
            )
            return {int(p): SavedOffset(int(o), int(pos)) for p, o, pos in rows.all()}

    async def committed_position(self) -> int:
        """The read model's committed checkpoint."""
        async with self._db.read() as conn:
            return await read_checkpoint(conn, LIVE)

    async def save(self, topic: str, offsets: Mapping[int, int], *, position: int) -> None:
        t = KAFKA_OFFSETS
        async with self._db.write() as conn:
            # Delete + insert: one portable upsert for SQLite and PostgreSQL.
            await conn.execute(t.delete().where(t.c.topic == topic))
            if offsets:
                await conn.execute(
                    t.insert(),
                    [
                        {"topic": topic, "partition": p, "next_offset": o, "position": position}
                        for p, o in offsets.items()
                    ],
                )


# -- the source --------------------------------------------------------------------


class KafkaEventSource:
    """An :class:`~query_svc.source.EventSource` over the relay's topic (module docstring).

    ``fallback`` is the store's own subscription: it fills gaps and answers
    :meth:`head_position`.
    """

    def __init__(
        self,
        *,
        consumer_factory: Callable[[], Consumer],
        topic: str,
        offsets: OffsetStore,
        fallback: EventSource,
        gap_timeout: float = 2.0,
        buffer_max: int = 50_000,
        save_interval: float = 1.0,
        heartbeat: float = 5.0,
        poll_timeout: float = 0.2,
        fetch_max: int = 2000,
        stop_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        codec: PayloadCodec | None = None,
    ) -> None:
        """``codec`` opens the records' sealed personal fields (None: left sealed)."""
        self._codec = codec
        self._consumer_factory = consumer_factory
        self.topic = topic
        self._offsets = offsets
        self._fallback = fallback
        self._gap_timeout = gap_timeout
        self._buffer_max = buffer_max
        self._save_interval = save_interval
        self._heartbeat = heartbeat
        self._poll_timeout = poll_timeout
        self._fetch_max = fetch_max
        self._stop_timeout = stop_timeout
        self._clock = clock
        self._commit_task: asyncio.Task[None] | None = None
        self._save_task: asyncio.Task[None] | None = None
        self._save_failing = False
        self.filled_from_store = 0

    async def head_position(self) -> int:
        return await self._fallback.head_position()

    async def events(self, *, from_position: int) -> AsyncIterator[SourceItem]:
        """Every event after ``from_position``, in order, each once; endless."""
        await self._offsets.ensure_table()
        consumer = self._consumer_factory()
        try:
            await consumer.start()
            tracker = await self._assign(consumer, from_position)
            async for item in self._follow(consumer, tracker, Reorder(after=from_position)):
                yield item
        finally:
            save, self._save_task = self._save_task, None
            if save is not None:
                # It is two short writes; the consumer it commits through must outlive it.
                done, _ = await asyncio.wait([save], timeout=self._stop_timeout)
                if not done:
                    save.cancel()
            try:
                async with asyncio.timeout(self._stop_timeout):
                    await consumer.stop()
            except Exception as exc:
                log.debug("closing the Kafka consumer failed: %r", exc)
            commit, self._commit_task = self._commit_task, None
            if commit is not None:
                # Stopping the consumer ends it; cancelling it early would leave
                # aiokafka's shielded inner request with an unretrieved error.
                done, _ = await asyncio.wait([commit], timeout=self._stop_timeout)
                if not done:
                    commit.cancel()

    async def _assign(self, consumer: Consumer, from_position: int) -> OffsetTracker:
        partitions = await consumer.partitions(self.topic)
        saved = await self._offsets.load(self.topic)
        wanted: dict[int, int | None] = {}
        for p in partitions:
            row = saved.get(p)
            # A row computed against a checkpoint above ours (the read model was
            # reset or restored) may have skipped what we need: start over.
            wanted[p] = (
                row.next_offset if row is not None and row.position <= from_position else None
            )
        starts = await consumer.assign(self.topic, wanted)
        log.info(
            "Kafka source: topic %r from position %d, partition offsets %s",
            self.topic,
            from_position,
            starts,
        )
        return OffsetTracker(starts)

    async def _follow(
        self, consumer: Consumer, tracker: OffsetTracker, reorder: Reorder
    ) -> AsyncIterator[SourceItem]:
        now = self._clock()
        blocked_since: float | None = None  # when the buffer last started waiting
        last_yield = last_save = now
        while True:
            ready = reorder.pop_ready()
            for event in ready:
                yield event
            now = self._clock()
            if ready:
                last_yield = now
                blocked_since = None
            if reorder.size:
                blocked_since = now if blocked_since is None else blocked_since
                if reorder.size >= self._buffer_max or now - blocked_since >= self._gap_timeout:
                    async for event in self._fill(reorder):
                        yield event
                    blocked_since = None
                    last_yield = self._clock()
                    continue
            wait = self._poll_timeout
            if blocked_since is not None:
                wait = min(wait, max(blocked_since + self._gap_timeout - now, 0.0))
            records = await consumer.fetch(wait=wait, max_records=self._fetch_max)
            for record in records:
                decoded = decode_record(record.value, record.headers, self._codec)
                if decoded is None:
                    log.warning(
                        "Kafka source: record %d of partition %d is not a store event; skipped",
                        record.offset,
                        record.partition,
                    )
                tracker.seen(
                    record.partition, record.offset, 0 if decoded is None else decoded.position
                )
                if decoded is not None:
                    reorder.push(decoded)
            now = self._clock()
            if not records and not reorder.size and now - last_yield >= self._heartbeat:
                last_yield = now
                yield Checkpoint(reorder.last)
            if now - last_save >= self._save_interval and (
                self._save_task is None or self._save_task.done()
            ):
                last_save = now
                # In the background: two database round trips inline would hold
                # back every event arriving meanwhile (a min_position read's tail).
                self._save_task = asyncio.create_task(self._save_offsets(consumer, tracker))

    async def _fill(self, reorder: Reorder) -> AsyncIterator[StoredEvent]:
        """Reads the positions missing before the first held one from the store."""
        first = reorder.first_held
        assert first is not None
        target = first - 1
        log.info(
            "Kafka source: positions %d..%d missing from Kafka (%d later ones waiting); "
            "reading them from the store",
            reorder.last + 1,
            target,
            reorder.size,
        )
        stream = self._fallback.events(from_position=reorder.last)
        try:
            async for item in stream:
                if not isinstance(item, StoredEvent):
                    continue
                if item.position > target:
                    break
                self.filled_from_store += 1
                reorder.push(item)
                for event in reorder.pop_ready():
                    yield event
                if reorder.last >= target:
                    break
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        for event in reorder.pop_ready():
            yield event

    async def _save_offsets(self, consumer: Consumer, tracker: OffsetTracker) -> None:
        try:
            # The checkpoint first: offsets computed against it stay valid for
            # every later (larger) checkpoint.
            offsets, valid_for = tracker.safe_offsets(await self._offsets.committed_position())
            await self._offsets.save(self.topic, offsets, position=valid_for)
        except Exception as exc:
            # Only an optimisation is lost: the next start re-reads a little more.
            if not self._save_failing:
                log.warning("Kafka source: cannot save partition offsets (%s)", exc)
            self._save_failing = True
            return
        self._save_failing = False
        if self._commit_task is None or self._commit_task.done():
            self._commit_task = asyncio.create_task(self._commit(consumer, offsets))

    async def _commit(self, consumer: Consumer, offsets: Mapping[int, int]) -> None:
        # For monitoring only (kafka-consumer-groups shows the lag): one at a
        # time, never awaited by the read loop, and its failure changes nothing.
        try:
            await consumer.commit(self.topic, offsets)
        except Exception as exc:
            log.debug("Kafka source: offset commit failed: %r", exc)


def kafka_consumer_factory(*, broker: str, group: str) -> Callable[[], Consumer]:
    """A factory of aiokafka consumers for ``broker`` in consumer group ``group``."""

    def create() -> Consumer:
        return AiokafkaConsumer(broker=broker, group=group)

    return create
