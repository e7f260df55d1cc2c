"""Helpers for the storage contract tests: backends, a harness, a fault-injecting storage."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from store_svc.engine import (
    Claim,
    EventStore,
    NewEvent,
    RecordedEvent,
    SnapshotRecord,
    Storage,
    StorageUnavailable,
)
from store_svc.engine.model import (
    EventLocation,
    Lookup,
    PendingEvent,
    Settled,
    StorageState,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def new_event(
    event_type: str = "test.happened",
    *,
    payload: bytes = b'{"n":1}',
    claims: Sequence[Claim] = (),
    releases: Sequence[Claim] = (),
) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), event_type, payload, tuple(claims), tuple(releases))


@dataclass
class Backend:
    """A storage adapter under test: `make()` gives a new instance on the same data."""

    name: str
    make: Callable[[], Storage]


@dataclass
class Harness:
    """Opens stores on the backend and closes everything at the end of the test."""

    backend: Backend
    stores: list[EventStore] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)

    def storage(self) -> Storage:
        storage = self.backend.make()
        self.storages.append(storage)
        return storage

    async def open(self, storage: Storage | None = None, **options: Any) -> EventStore:
        store = await EventStore.open(storage or self.storage(), **options)
        self.stores.append(store)
        return store

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        for storage in self.storages:
            await storage.close()


async def read_everything(store: EventStore, after_position: int = 0) -> list[RecordedEvent]:
    """All events after `after_position`, paging with read_all."""
    events: list[RecordedEvent] = []
    while True:
        page = await store.read_all(after_position=after_position, limit=1000)
        if not page:
            return events
        events.extend(page)
        after_position = page[-1].position


class FaultyStorage:
    """Delegates to a real storage; `write_batch` fails on demand.

    fail_before: the next N writes raise without writing anything.
    fail_after: the next N writes are stored, then raise (a timeout after the
    server committed: the outcome is unknown to the engine).
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.fail_before = 0
        self.fail_after = 0
        self.write_calls = 0
        self.find_calls = 0
        self.lookup_calls = 0

    @property
    def unique_event_ids(self) -> bool:
        return self.inner.unique_event_ids

    async def write_batch(self, events: Sequence[PendingEvent]) -> None:
        self.write_calls += 1
        if self.fail_before:
            self.fail_before -= 1
            raise StorageUnavailable("injected failure before the write")
        await self.inner.write_batch(events)
        if self.fail_after:
            self.fail_after -= 1
            raise StorageUnavailable("injected failure after the write")

    async def acquire_writer_lock(self) -> None:
        await self.inner.acquire_writer_lock()

    async def release_writer_lock(self) -> None:
        await self.inner.release_writer_lock()

    async def load_state(self) -> StorageState:
        return await self.inner.load_state()

    async def lookup(self, aggregate_ids: Sequence[str], claims: Sequence[Claim]) -> Lookup:
        self.lookup_calls += 1
        return await self.inner.lookup(aggregate_ids, claims)

    async def settle_batch(self, events: Sequence[PendingEvent]) -> Settled:
        return await self.inner.settle_batch(events)

    async def find_event_ids(self, event_ids: Sequence[str]) -> dict[str, EventLocation]:
        self.find_calls += 1
        return await self.inner.find_event_ids(event_ids)

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        from_version: int,
        to_version: int | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[RecordedEvent]:
        return await self.inner.read_stream(
            aggregate_id, from_version=from_version, to_version=to_version, until=until, limit=limit
        )

    async def read_all(
        self,
        *,
        after_position: int,
        limit: int,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[RecordedEvent]:
        return await self.inner.read_all(
            after_position=after_position,
            limit=limit,
            event_types=event_types,
            aggregate_id=aggregate_id,
            since=since,
            until=until,
        )

    async def count(
        self,
        *,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        return await self.inner.count(
            event_types=event_types, aggregate_id=aggregate_id, since=since, until=until
        )

    async def aggregate_ids(self, *, after: str, limit: int) -> list[str]:
        return await self.inner.aggregate_ids(after=after, limit=limit)

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        await self.inner.save_snapshot(snapshot)

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        return await self.inner.latest_snapshot(aggregate_id)

    async def close(self) -> None:
        await self.inner.close()
