"""The storage port: the small set of operations the engine needs from a database.

Adapters: `SqliteStorage` (embedded default) and `ClickHouseStorage`. One
contract test suite (tests/integration/store_engine) runs against both.

Contract every adapter keeps:

* Only the holder of the writer lock calls `write_batch`; the lock is
  exclusive across processes (and across instances in one process).
* `write_batch` is atomic from the engine's point of view: when it returns,
  every event of the batch is durably stored and visible to reads; when it
  raises, the outcome may be unknown (a timeout after the server committed),
  so the engine calls `settle_batch` with that batch before writing anything
  else. `settle_batch` makes the outcome definite (wait for the write, or
  fence it off as ClickHouse does with a new lease epoch; then repair or
  complete secondary copies of that batch) and says whether it landed.
* Claims are stored with the event rows (`PendingEvent.claims/releases`) and,
  in the same write, in a table of current owners keyed by claim, so that
  `lookup` reads heads and owners by key (an index, never a scan).
* `load_state` reads no heads and no claims: its cost does not grow with the
  number of streams (bar the settling of a predecessor's interrupted write).
* Reads never return the same position twice, even if the database holds a
  duplicate row.
* Every call is bounded by a timeout; storage failures of any kind surface
  as `StorageUnavailable` naming what failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from store_svc.engine.model import (
    Claim,
    EventLocation,
    Lookup,
    PendingEvent,
    RecordedEvent,
    Settled,
    SnapshotRecord,
    StorageState,
)

__all__ = ["Storage"]


@runtime_checkable
class Storage(Protocol):
    """Port implemented by every event storage adapter. Times are aware datetimes."""

    async def acquire_writer_lock(self) -> None:
        """Become the single writer; raises WriterLockHeld if another writer holds it."""
        ...

    async def release_writer_lock(self) -> None:
        """Give the writer lock up (idempotent)."""
        ...

    async def load_state(self) -> StorageState:
        """Settle any interrupted write of a previous writer, then return the log's end."""
        ...

    async def lookup(self, aggregate_ids: Sequence[str], claims: Sequence[Claim]) -> Lookup:
        """Current heads of `aggregate_ids` and owners of `claims`, read by key, in one call."""
        ...

    async def settle_batch(self, events: Sequence[PendingEvent]) -> Settled:
        """After `write_batch(events)` raised: make its outcome definite and report it.

        Afterwards either every event of the batch is stored and visible (with
        its claim changes), or none is and none ever will be.
        """
        ...

    @property
    def unique_event_ids(self) -> bool:
        """Whether ``write_batch`` refuses, atomically, a batch holding a stored event id.

        If so it raises ``EventIdsAlreadyStored`` and writes nothing, and the
        engine may skip ``find_event_ids`` for a batch that looks new.
        """
        ...

    async def write_batch(self, events: Sequence[PendingEvent]) -> None:
        """Store the batch atomically (all or nothing); positions are already assigned."""
        ...

    async def find_event_ids(self, event_ids: Sequence[str]) -> dict[str, EventLocation]:
        """Locations of those of `event_ids` that are stored (committed)."""
        ...

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        from_version: int,
        to_version: int | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[RecordedEvent]:
        """Events of one stream with from_version <= version <= to_version and
        timestamp <= until, ordered by version, at most `limit`."""
        ...

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
        """Events with position > after_position matching every given filter
        (since <= timestamp <= until), ordered by position, at most `limit`."""
        ...

    async def count(
        self,
        *,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        """Number of events matching every given filter."""
        ...

    async def aggregate_ids(self, *, after: str, limit: int) -> list[str]:
        """Distinct aggregate ids greater than `after`, ascending, at most `limit`."""
        ...

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None: ...

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        """The snapshot with the highest version (latest created on a tie), if any."""
        ...

    async def close(self) -> None:
        """Release the lock if held and free connections (idempotent)."""
        ...
