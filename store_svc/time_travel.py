"""Time travel and snapshots: folding stored events with the shared domain.

Every state returned here is the domain's own ``fold`` of the stored events
(or of a snapshot plus the events after it), so time travel can never
disagree with what the command side decides against.

Invariants:
- A snapshot is used only if its schema version equals the domain's
  ``STATE_SCHEMA_VERSION``; others are ignored, never misread.
- Snapshots keep personal fields sealed (``pii.codec``): a stored snapshot
  never holds an address in clear, and reads "[ERASED]" after erasure.
- "State at time T" folds the events stored at or before T; a snapshot
  serves it only if the snapshot was taken at or before T (so every event
  it folded was stored before T).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime

import domain
from pii.codec import PayloadCodec
from store_svc.convert import to_domain
from store_svc.engine import EventStore, RecordedEvent, SnapshotRecord

log = logging.getLogger(__name__)


class AggregateNotFound(LookupError):
    """The aggregate has no events (at all, or at the point asked for)."""


@dataclass(frozen=True, slots=True)
class Folded:
    """A state and how many events were folded to get it."""

    state: domain.UserState
    events_replayed: int
    snapshot_version: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a history with the state after it."""

    record: RecordedEvent
    state: domain.UserState
    changed_fields: tuple[str, ...]


def snapshot_dict(record: SnapshotRecord, codec: PayloadCodec) -> dict[str, object] | None:
    """The state dict a snapshot holds, opened; None if its format is not the current one."""
    if record.schema_version != domain.STATE_SCHEMA_VERSION:
        return None
    return codec.open_state(json.loads(record.state))


def snapshot_state(record: SnapshotRecord, codec: PayloadCodec) -> domain.UserState | None:
    """The state a snapshot holds, or None if its format is not the current one."""
    data = snapshot_dict(record, codec)
    return None if data is None else domain.state_from_dict(data)


class TimeTravel:
    """Reconstructs users' states from the event store."""

    def __init__(self, store: EventStore, codec: PayloadCodec, *, snapshot_every: int) -> None:
        self._store = store
        self._codec = codec
        self._snapshot_every = snapshot_every
        self._background: set[asyncio.Task[None]] = set()

    @property
    def codec(self) -> PayloadCodec:
        """What opens and seals personal fields."""
        return self._codec

    def _fold(
        self, records: list[RecordedEvent], state: domain.UserState | None
    ) -> domain.UserState | None:
        return domain.fold((to_domain(r, self._codec) for r in records), state)

    async def _require_exists(self, aggregate_id: str) -> None:
        if await self._store.stream_version(aggregate_id) == 0:
            raise AggregateNotFound(f"user {aggregate_id} not found")

    async def current(self, aggregate_id: str) -> Folded:
        """The state after every event, folded from the first event."""
        await self._require_exists(aggregate_id)
        records = await self._store.read_stream(aggregate_id)
        state = self._fold(records, None)
        if state is None:
            raise AggregateNotFound(f"user {aggregate_id} not found")
        return Folded(state, len(records))

    async def at_time(
        self, aggregate_id: str, at: datetime, *, asked: datetime | None = None
    ) -> Folded:
        """The state after every event stored at or before ``at``.

        ``asked`` is the caller's time when ``at`` was clamped to what storage
        holds; a not-found answer names it, not the clamped one.
        """
        await self._require_exists(aggregate_id)
        snap = await self._store.latest_snapshot(aggregate_id)
        base = (
            snapshot_state(snap, self._codec)
            if snap is not None and snap.created_at <= at
            else None
        )
        if base is not None and snap is not None:
            # Nothing newer than the snapshot: no read of events (heads are mostly cached).
            records = (
                []
                if snap.version == await self._store.stream_version(aggregate_id)
                else await self._store.read_stream(
                    aggregate_id, from_version=snap.version + 1, until=at
                )
            )
            state = self._fold(records, base)
            assert state is not None
            return Folded(state, len(records), snap.version)
        records = await self._store.read_stream(aggregate_id, until=at)
        state = self._fold(records, None)
        if state is None:
            raise AggregateNotFound(
                f"user {aggregate_id} did not exist at {domain.format_timestamp(asked or at)}"
            )
        return Folded(state, len(records))

    async def at_version(self, aggregate_id: str, version: int) -> Folded:
        """The state after the first ``version`` events."""
        current = await self._store.stream_version(aggregate_id)
        if current == 0:
            raise AggregateNotFound(f"user {aggregate_id} not found")
        if version > current:
            raise AggregateNotFound(f"user {aggregate_id} has version {current}, not {version}")
        records = await self._store.read_stream(aggregate_id, to_version=version)
        state = self._fold(records, None)
        assert state is not None
        return Folded(state, len(records))

    async def history(self, aggregate_id: str) -> list[Step]:
        """Every event with the state after it and the fields it changed."""
        await self._require_exists(aggregate_id)
        steps: list[Step] = []
        state: domain.UserState | None = None
        for record in await self._store.read_stream(aggregate_id):
            after = domain.evolve(state, to_domain(record, self._codec))
            steps.append(Step(record, after, domain.changed_fields(state, after)))
            state = after
        return steps

    async def state_or_none(self, aggregate_id: str, at: datetime) -> domain.UserState | None:
        """The state at ``at``, or None if the user did not exist yet."""
        try:
            return (await self.at_time(aggregate_id, at)).state
        except AggregateNotFound:
            if await self._store.stream_version(aggregate_id) == 0:
                raise
            return None

    async def states_at(
        self, at: datetime, *, page_size: int, after_id: str
    ) -> tuple[list[domain.UserState], str]:
        """States of the users that existed at ``at``, by id, after ``after_id``.

        Returns the page and the id to continue after ("" when done).
        """
        states: list[domain.UserState] = []
        cursor = after_id
        while len(states) < page_size:
            ids = await self._store.aggregate_ids(after=cursor, limit=page_size)
            if not ids:
                return states, ""
            for aggregate_id in ids:
                cursor = aggregate_id
                state = await self.state_or_none(aggregate_id, at)
                if state is not None:
                    states.append(state)
                    if len(states) == page_size:
                        return states, cursor
        return states, cursor

    # -- snapshots ---------------------------------------------------------

    async def create_snapshot(self, aggregate_id: str, now: datetime) -> SnapshotRecord:
        """Folds the current state and stores it as a snapshot."""
        folded = await self.from_snapshot(aggregate_id)
        record = SnapshotRecord(
            aggregate_id=aggregate_id,
            version=folded.state.version,
            schema_version=domain.STATE_SCHEMA_VERSION,
            state=json.dumps(self._codec.seal_state(domain.state_to_dict(folded.state))).encode(),
            created_at=now,
        )
        await self._store.save_snapshot(record)
        return record

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord:
        """The newest stored snapshot; AggregateNotFound if there is none."""
        await self._require_exists(aggregate_id)
        snap = await self._store.latest_snapshot(aggregate_id)
        if snap is None or snapshot_state(snap, self._codec) is None:
            raise AggregateNotFound(f"user {aggregate_id} has no snapshot")
        return snap

    async def from_snapshot(self, aggregate_id: str) -> Folded:
        """The current state from the newest usable snapshot plus newer events."""
        await self._require_exists(aggregate_id)
        snap = await self._store.latest_snapshot(aggregate_id)
        base = snapshot_state(snap, self._codec) if snap is not None else None
        from_version = snap.version + 1 if base is not None and snap is not None else 1
        current = await self._store.stream_version(aggregate_id)
        records = (
            []
            if from_version > current
            else await self._store.read_stream(aggregate_id, from_version=from_version)
        )
        state = self._fold(records, base)
        if state is None:
            raise AggregateNotFound(f"user {aggregate_id} not found")
        return Folded(state, len(records), from_version - 1)

    def after_append(
        self, aggregate_id: str, old_version: int, new_version: int, now: datetime
    ) -> None:
        """Takes an automatic snapshot, in the background, every N events."""
        n = self._snapshot_every
        if n <= 0 or old_version // n == new_version // n:
            return
        task = asyncio.create_task(self._auto_snapshot(aggregate_id, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _auto_snapshot(self, aggregate_id: str, now: datetime) -> None:
        try:
            await self.create_snapshot(aggregate_id, now)
        except Exception:  # a failed snapshot costs only speed; log, never fail the append
            log.exception("automatic snapshot of %s failed", aggregate_id)

    async def drain(self) -> None:
        """Waits for background snapshots (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
