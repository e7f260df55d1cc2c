"""EventStore: the single writer with group commit, and the reads and subscriptions on top.

Invariants the store keeps (ARCHITECTURE.md section 2):

* One writer per storage: `open` takes the storage's writer lock or fails with
  WriterLockHeld.
* Every append is validated, in arrival order, against the stream heads and
  claims as tentatively updated by the appends before it in the same batch;
  a batch is written with ONE storage call and acknowledged only after that
  call returned (durable ack).
* Heads and claims live in bounded LRU caches (`head_cache_size`,
  `claim_cache_size`) over storage: the misses of a batch are read with ONE
  `Storage.lookup`. The caches are write-through and only the writer task
  fills them (with what it read or committed), so a cached entry is never
  stale; nothing is loaded at open.
* Versions are 1-based and contiguous per stream; positions are 1-based,
  gapless and in commit order; one append's events get consecutive versions
  and consecutive positions.
* A failed storage write: every caller of the batch gets StorageUnavailable,
  and before the next write storage settles that batch (`settle_batch`: it
  landed or it never will); if it landed after all (e.g. a timeout after the
  server committed), its heads and claims are applied then, and an
  idempotent retry returns its result.
* Memory is bounded: at most `max_pending_appends` appends wait for the
  writer, and each live subscriber buffers at most `subscriber_buffer`
  events before it is switched back to paging from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cachetools import LRUCache

from store_svc.engine.errors import (
    ClaimTaken,
    DuplicateEventId,
    EngineError,
    EventIdsAlreadyStored,
    StorageUnavailable,
    StoreClosed,
    WrongExpectedVersion,
)
from store_svc.engine.model import (
    AppendResult,
    Checkpoint,
    Claim,
    EventLocation,
    ExpectedVersion,
    NewEvent,
    PendingEvent,
    RecordedEvent,
    Settled,
    SnapshotRecord,
    from_micros,
    to_micros,
)
from store_svc.engine.storage import Storage

__all__ = ["MAX_READ_LIMIT", "EventStore"]

logger = logging.getLogger(__name__)

#: Upper bound of `limit` for read_all and aggregate_ids (an unbounded read is a defect).
MAX_READ_LIMIT = 10_000
# Page size of a subscription's catch-up reads.
_SUBSCRIPTION_PAGE = 500
# Latest snapshot per aggregate kept in memory (write-through; bounded).
_SNAPSHOT_CACHE_SIZE = 10_000
# How long callers of a failed batch wait for it to be settled (seconds).
_RELOAD_WAIT = 5.0


@dataclass(slots=True, eq=False)
class _AppendRequest:
    """One queued append and the future its caller waits on."""

    aggregate_id: str
    aggregate_type: str
    expected: ExpectedVersion
    events: tuple[NewEvent, ...]
    timestamp: datetime
    correlation_id: str
    causation_id: str
    traceparent: str
    future: asyncio.Future[AppendResult]
    settled: bool = False  # guards the one release of the request's queue slot


class _BatchPlan:
    """Validates a batch's appends in order against tentatively updated heads and claims.

    Nothing here touches the store's real state: the plan's overlays are
    applied by the writer only after the storage write succeeded. `heads` and
    `claims` hold the values before the batch of every stream and claim the
    batch touches (a claim mapped to None is free).
    """

    def __init__(
        self,
        heads: dict[str, int],
        claims: dict[Claim, str | None],
        last_position: int,
        stored_ids: dict[str, EventLocation],
    ) -> None:
        self._base_heads = heads
        self._base_claims = claims
        self._stored_ids = stored_ids
        self.heads: dict[str, int] = {}
        self.claims: dict[Claim, str | None] = {}  # None: released in this batch
        self.position = last_position
        self.pending: list[PendingEvent] = []
        self._batch_ids: dict[str, EventLocation] = {}

    def _head(self, aggregate_id: str) -> int:
        head = self.heads.get(aggregate_id)
        return self._base_heads.get(aggregate_id, 0) if head is None else head

    def _owner(self, claim: Claim) -> str | None:
        if claim in self.claims:
            return self.claims[claim]
        return self._base_claims.get(claim)

    def add(self, req: _AppendRequest) -> AppendResult:
        """Plan one append; raises WrongExpectedVersion / ClaimTaken / DuplicateEventId."""
        aggregate_id = req.aggregate_id
        if req.events:
            # Ids already stored (or planned earlier in this batch) mean a retry
            # or a caller bug; decided before the version check because a
            # retry's expected version no longer matches by construction.
            locations = [
                self._batch_ids.get(ev.event_id) or self._stored_ids.get(ev.event_id)
                for ev in req.events
            ]
            if any(location is not None for location in locations):
                return self._replayed(req, locations)
        current = self._head(aggregate_id)
        if not req.expected.matches(current):
            raise WrongExpectedVersion(aggregate_id, req.expected, current)
        self.claims.update(self._claim_changes(aggregate_id, req.events))
        positions: list[int] = []
        for offset, event in enumerate(req.events, start=1):
            self.position += 1
            record = RecordedEvent(
                position=self.position,
                event_id=event.event_id,
                aggregate_id=aggregate_id,
                aggregate_type=req.aggregate_type,
                version=current + offset,
                event_type=event.event_type,
                timestamp=req.timestamp,
                payload=event.payload,
                correlation_id=req.correlation_id,
                causation_id=req.causation_id,
                traceparent=req.traceparent,
            )
            self.pending.append(PendingEvent(record, event.claims, event.releases))
            self._batch_ids[event.event_id] = EventLocation(
                event.event_id, aggregate_id, record.version, record.position
            )
            positions.append(self.position)
        version = current + len(req.events)
        if req.events:
            self.heads[aggregate_id] = version
        return AppendResult(aggregate_id, version, tuple(positions), idempotent=False)

    def _replayed(self, req: _AppendRequest, locations: list[EventLocation | None]) -> AppendResult:
        """The original result if `req` repeats a stored append exactly, else DuplicateEventId.

        Exactly: every id stored, in this stream, at consecutive versions in the
        same order, starting right after the expected version (if one was given).
        """
        first = locations[0]
        faithful = (
            first is not None
            and first.aggregate_id == req.aggregate_id
            and (req.expected.value is None or first.version == req.expected.value + 1)
        )
        if faithful and first is not None:
            for offset, location in enumerate(locations):
                if (
                    location is None
                    or location.aggregate_id != req.aggregate_id
                    or location.version != first.version + offset
                ):
                    faithful = False
                    break
        if not faithful:
            clash = next(location for location in locations if location is not None)
            raise DuplicateEventId(clash.event_id, clash.aggregate_id, clash.version)
        stored = [location for location in locations if location is not None]
        return AppendResult(
            req.aggregate_id,
            stored[-1].version,
            tuple(location.position for location in stored),
            idempotent=True,
        )

    def _claim_changes(
        self, aggregate_id: str, events: tuple[NewEvent, ...]
    ) -> dict[Claim, str | None]:
        """Claim changes of one append, event by event (releases first); raises ClaimTaken.

        Computed aside and merged only if the whole append passes, so a
        rejected append leaves no trace in the batch.
        """
        changes: dict[Claim, str | None] = {}

        def owner(claim: Claim) -> str | None:
            return changes[claim] if claim in changes else self._owner(claim)

        for event in events:
            for claim in event.releases:
                # Only the holder can free a claim: a stray release must not
                # hand someone else's e-mail address to a third party.
                if owner(claim) == aggregate_id:
                    changes[claim] = None
            for claim in event.claims:
                holder = owner(claim)
                if holder is not None and holder != aggregate_id:
                    raise ClaimTaken(claim, holder)
                changes[claim] = aggregate_id
        return changes


class _LiveFeed:
    """A subscriber's bounded buffer of live events, filled by the writer."""

    __slots__ = ("buffer", "capacity", "dropped", "wakeup")

    def __init__(self, capacity: int) -> None:
        self.buffer: deque[RecordedEvent] = deque()
        self.capacity = capacity
        self.dropped = False
        self.wakeup = asyncio.Event()

    def offer(self, events: Sequence[RecordedEvent]) -> bool:
        """Buffer `events`, or drop the feed if they do not fit (returns False)."""
        if len(self.buffer) + len(events) > self.capacity:
            self.drop()
            return False
        self.buffer.extend(events)
        self.wakeup.set()
        return True

    def drop(self) -> None:
        """Stop live delivery; the subscriber pages from storage and registers again."""
        self.dropped = True
        self.buffer.clear()
        self.wakeup.set()


class _StreamCache:
    """Whole streams (versions 1..head) kept in memory: LRU, bounded in events.

    Write-through: this process is the single writer, so every committed
    event is appended here in the same synchronous step that moves the head,
    and a cached stream is never stale. A stream that cannot be kept whole
    (too large, or an append that does not follow) is simply not cached.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._streams: OrderedDict[str, list[RecordedEvent]] = OrderedDict()
        self._size = 0

    @property
    def max_stream(self) -> int:
        """Longest stream worth caching (a tenth of the capacity)."""
        return self._capacity // 10

    def get(self, aggregate_id: str) -> list[RecordedEvent] | None:
        events = self._streams.get(aggregate_id)
        if events is not None:
            self._streams.move_to_end(aggregate_id)
        return events

    def put(self, aggregate_id: str, events: list[RecordedEvent]) -> None:
        if not events or len(events) > self.max_stream:
            return
        self.discard(aggregate_id)
        self._streams[aggregate_id] = events
        self._size += len(events)
        self._evict()

    def extend(self, records: Sequence[RecordedEvent]) -> None:
        for record in records:
            events = self._streams.get(record.aggregate_id)
            if events is None:
                continue
            if events[-1].version + 1 == record.version and len(events) < self.max_stream:
                events.append(record)
                self._size += 1
            else:
                self.discard(record.aggregate_id)
        self._evict()

    def discard(self, aggregate_id: str) -> None:
        events = self._streams.pop(aggregate_id, None)
        if events is not None:
            self._size -= len(events)

    def clear(self) -> None:
        self._streams.clear()
        self._size = 0

    def _evict(self) -> None:
        while self._size > self._capacity and self._streams:
            _, events = self._streams.popitem(last=False)
            self._size -= len(events)


class EventStore:
    """The event store engine: one per process, the single writer of its storage.

    Create with `await EventStore.open(storage)`; stop with `await store.close()`.
    From a successful `open` on, the store owns the storage: `close` closes it.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        batch_max_events: int,
        batch_max_delay: float,
        subscriber_buffer: int,
        max_pending_appends: int,
        on_batch: Callable[[int], None] | None = None,
        stream_cache_events: int = 0,
        head_cache_size: int = 1,
        claim_cache_size: int = 1,
    ) -> None:
        # Use `EventStore.open`: the constructor neither locks nor loads.
        self._storage = storage
        self._batch_max_events = batch_max_events
        self._batch_max_delay = batch_max_delay
        self._subscriber_buffer = subscriber_buffer
        # Stream heads (0: no events) and claim owners (None: free) as storage
        # holds them; filled only by the writer task, write-through.
        self._heads: LRUCache[str, int] = LRUCache(head_cache_size)
        self._claims: LRUCache[Claim, str | None] = LRUCache(claim_cache_size)
        self._last_position = 0
        self._unsettled: _BatchPlan | None = None  # a failed batch storage must settle first
        self._needs_reload = False  # after an internal error: load_state, drop the caches
        self._reload: asyncio.Future[bool] | None = None  # a settling still running
        self._pending: deque[_AppendRequest] = deque()
        self._pending_events = 0
        self._slots = asyncio.Semaphore(max_pending_appends)
        self._on_batch = on_batch  # observer of committed batch sizes (metrics)
        self._streams = _StreamCache(stream_cache_events)
        self._wakeup = asyncio.Event()
        self._batch_full = asyncio.Event()
        self._subscribers: set[_LiveFeed] = set()
        self._snapshots: OrderedDict[str, SnapshotRecord | None] = OrderedDict()
        self._closing = False
        self._closed = False
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        storage: Storage,
        *,
        batch_max_events: int = 500,
        batch_max_delay: float = 0.002,
        subscriber_buffer: int = 1000,
        max_pending_appends: int = 10_000,
        on_batch: Callable[[int], None] | None = None,
        stream_cache_events: int = 100_000,
        head_cache_size: int = 100_000,
        claim_cache_size: int = 100_000,
    ) -> EventStore:
        """Take the writer lock, read the last position, start the writer task.

        Heads and claims are not loaded: they are read per batch as needed and
        kept in LRU caches of at most `head_cache_size` streams and
        `claim_cache_size` claims, so opening costs the same for any number of
        streams.

        Raises WriterLockHeld if another writer runs, StorageUnavailable if the
        storage cannot be read. On success the store owns `storage` (`close`
        closes it); on failure it stays the caller's.
        """
        if (
            min(
                batch_max_events,
                subscriber_buffer,
                max_pending_appends,
                head_cache_size,
                claim_cache_size,
            )
            < 1
        ):
            raise ValueError(
                "batch_max_events, subscriber_buffer, max_pending_appends, head_cache_size, "
                "claim_cache_size must be >= 1"
            )
        if batch_max_delay < 0:
            raise ValueError("batch_max_delay must be >= 0")
        store = cls(
            storage,
            batch_max_events=batch_max_events,
            batch_max_delay=batch_max_delay,
            subscriber_buffer=subscriber_buffer,
            max_pending_appends=max_pending_appends,
            on_batch=on_batch,
            stream_cache_events=stream_cache_events,
            head_cache_size=head_cache_size,
            claim_cache_size=claim_cache_size,
        )
        await storage.acquire_writer_lock()
        try:
            state = await storage.load_state()
        except BaseException:
            await storage.release_writer_lock()
            raise
        store._last_position = state.last_position
        store._writer = asyncio.create_task(store._run_writer(), name="event-store-writer")
        logger.info("event store open: last position %d", state.last_position)
        return store

    async def close(self) -> None:
        """Refuse new appends, finish the queued ones, end subscriptions, release the lock
        and close the storage."""
        if self._closing:
            if self._writer is not None:
                await asyncio.shield(self._writer)
            return
        self._closing = True
        self._wakeup.set()
        self._batch_full.set()
        try:
            if self._writer is not None:
                await self._writer
        finally:
            self._closed = True
            for feed in self._subscribers:
                feed.wakeup.set()
            self._subscribers.clear()
            try:
                await self._storage.release_writer_lock()
            finally:
                await self._storage.close()

    # --- writes ---------------------------------------------------------------

    async def append(
        self,
        aggregate_id: str,
        aggregate_type: str,
        expected: ExpectedVersion,
        events: Sequence[NewEvent],
        *,
        now: datetime,
        correlation_id: str = "",
        causation_id: str = "",
        traceparent: str = "",
    ) -> AppendResult:
        """Append `events` to stream `aggregate_id` if it is at `expected`.

        Returns after the events are durably stored. All events get the
        timestamp `now` (aware; stored in UTC with microsecond precision).
        Raises WrongExpectedVersion, ClaimTaken, DuplicateEventId,
        StorageUnavailable (outcome of the write unknown: retry with the same
        event ids, which is idempotent) or StoreClosed.

        If the caller is cancelled after the append was queued, the append may
        still be committed; retrying with the same event ids is safe.
        """
        if not aggregate_id:
            raise ValueError("aggregate_id must not be empty")
        batch = tuple(events)
        seen: set[str] = set()
        for event in batch:
            if not event.event_id:
                raise ValueError("event_id must not be empty")
            if event.event_id in seen:
                raise DuplicateEventId(event.event_id)
            seen.add(event.event_id)
        # Normalise to UTC microseconds now, so what is acknowledged is exactly
        # what a read returns later.
        timestamp = from_micros(to_micros(now))
        if self._closing:
            raise StoreClosed("the event store is closed")
        await self._slots.acquire()
        if self._closing:
            self._slots.release()
            raise StoreClosed("the event store is closed")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append(
            _AppendRequest(
                aggregate_id,
                aggregate_type,
                expected,
                batch,
                timestamp,
                correlation_id,
                causation_id,
                traceparent,
                future,
            )
        )
        self._pending_events += len(batch)
        if self._pending_events >= self._batch_max_events:
            self._batch_full.set()
        self._wakeup.set()
        return await future

    async def _run_writer(self) -> None:
        """Group commit: take what is queued (waiting up to batch_max_delay), commit, repeat."""
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                if self._closing:
                    return
                continue
            if (
                self._pending_events < self._batch_max_events
                and self._batch_max_delay > 0
                and not self._closing
            ):
                self._batch_full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._batch_max_delay):
                        await self._batch_full.wait()
            batch = self._take_batch()
            try:
                await self._commit(batch)
            except Exception as exc:  # a bug must not kill the writer and hang every caller
                logger.exception("event store writer: unexpected error in a batch")
                self._settle_all(batch, EngineError(f"internal error in the writer: {exc!r}"))
                # What this batch did is unknown: reload the log's end and
                # forget every cached head and claim before the next write.
                self._needs_reload = True

    def _take_batch(self) -> list[_AppendRequest]:
        batch: list[_AppendRequest] = []
        taken_events = 0
        while self._pending:
            size = len(self._pending[0].events)
            if batch and taken_events + size > self._batch_max_events:
                break
            batch.append(self._pending.popleft())
            taken_events += size
        self._pending_events -= taken_events
        if not self._pending:
            self._wakeup.clear()
        return batch

    async def _commit(self, batch: list[_AppendRequest]) -> None:
        if self._reload is not None:
            reload, self._reload = self._reload, None
            await reload  # never raises: _settle_failed reports failure as False
        if (self._unsettled is not None and not await self._settle_failed()) or (
            self._needs_reload and not await self._reload_state()
        ):
            self._settle_all(
                batch, StorageUnavailable("storage could not settle an earlier failed write")
            )
            return
        all_ids = [event.event_id for req in batch for event in req.events]
        # Where storage refuses stored ids itself (unique_event_ids), a batch is
        # first decided as if all its ids were new, which saves a lookup per
        # batch; it is decided again knowing the stored ids when anything in it
        # is rejected (a rejected append may be a retry, whose answer is its
        # original result) or when storage refuses the write for a stored id.
        optimistic = self._storage.unique_event_ids
        try:
            heads, claims = await self._batch_state(batch)
            stored_ids = await self._find_ids(all_ids) if not optimistic else {}
        except StorageUnavailable as exc:
            self._settle_all(batch, exc)
            return
        plan, outcomes = self._plan(batch, heads, claims, stored_ids)
        if optimistic and any(isinstance(outcome, EngineError) for outcome in outcomes):
            try:
                plan, outcomes = self._plan(batch, heads, claims, await self._find_ids(all_ids))
            except StorageUnavailable as exc:
                self._settle_all(batch, exc)
                return
            optimistic = False
        if plan.pending:
            try:
                try:
                    await self._storage.write_batch(plan.pending)
                except EventIdsAlreadyStored:
                    if not optimistic:
                        raise  # the lookup said they were new: storage disagrees
                    plan, outcomes = self._plan(batch, heads, claims, await self._find_ids(all_ids))
                    if plan.pending:
                        await self._storage.write_batch(plan.pending)
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, StorageUnavailable)
                    else StorageUnavailable(f"storage write failed: {exc!r}")
                )
                # Settle first, so that a caller reacting to the error (reading
                # the version, retrying) already sees what storage really holds;
                # but a hanging storage must not hold the callers for long: the
                # settling then goes on and the next batch waits for it.
                self._unsettled = plan
                reload = asyncio.ensure_future(self._settle_failed())
                try:
                    await asyncio.wait_for(asyncio.shield(reload), _RELOAD_WAIT)
                except TimeoutError:
                    self._reload = reload
                # Rejections fail too: they were decided against a state that
                # may never have been committed, so they could mislead.
                self._settle_all(batch, error)
                return
        # Committed: apply the plan in one synchronous step (no await), so that
        # readers of heads/last position and new subscribers never see half of it.
        self._apply(plan)
        self._streams.extend([pending.record for pending in plan.pending])
        for req, outcome in zip(batch, outcomes, strict=True):
            self._settle(req, outcome)
        if plan.pending:
            self._publish([pending.record for pending in plan.pending])
            if self._on_batch is not None:
                self._on_batch(len(plan.pending))

    def _apply(self, plan: _BatchPlan) -> None:
        """Move the cached heads and claims and the last position to a committed plan."""
        for aggregate_id, version in plan.heads.items():
            self._heads[aggregate_id] = version
        for claim, owner in plan.claims.items():
            self._claims[claim] = owner
        self._last_position = plan.position

    async def _batch_state(
        self, batch: list[_AppendRequest]
    ) -> tuple[dict[str, int], dict[Claim, str | None]]:
        """Heads and claim owners before the batch, for every stream and claim it touches.

        Cache hits cost nothing; the misses are read with one storage lookup
        and cached (only this task writes, so what it reads stays true until
        it commits again). Returned as plain dicts: the caches may evict
        entries while the batch is planned.
        """
        heads: dict[str, int] = {}
        claims: dict[Claim, str | None] = {}
        missing_heads: list[str] = []
        missing_claims: list[Claim] = []
        for req in batch:
            if req.aggregate_id not in heads:
                head = self._heads.get(req.aggregate_id)
                if head is None:
                    missing_heads.append(req.aggregate_id)
                    head = 0
                heads[req.aggregate_id] = head
            for event in req.events:
                for claim in (*event.releases, *event.claims):
                    if claim not in claims:
                        if claim in self._claims:
                            claims[claim] = self._claims[claim]
                        else:
                            missing_claims.append(claim)
                            claims[claim] = None
        if missing_heads or missing_claims:
            found = await self._storage.lookup(missing_heads, missing_claims)
            for aggregate_id in missing_heads:
                heads[aggregate_id] = self._heads[aggregate_id] = found.heads.get(aggregate_id, 0)
            for claim in missing_claims:
                claims[claim] = self._claims[claim] = found.owners.get(claim)
        return heads, claims

    async def _find_ids(self, event_ids: list[str]) -> dict[str, EventLocation]:
        return await self._storage.find_event_ids(event_ids) if event_ids else {}

    def _plan(
        self,
        batch: list[_AppendRequest],
        heads: dict[str, int],
        claims: dict[Claim, str | None],
        stored_ids: dict[str, EventLocation],
    ) -> tuple[_BatchPlan, list[AppendResult | EngineError]]:
        """Decides every append of ``batch`` in order; touches no state of the store."""
        plan = _BatchPlan(heads, claims, self._last_position, stored_ids)
        outcomes: list[AppendResult | EngineError] = []
        for req in batch:
            try:
                outcomes.append(plan.add(req))
            except (WrongExpectedVersion, ClaimTaken, DuplicateEventId) as exc:
                outcomes.append(exc)
        return plan, outcomes

    async def _settle_failed(self) -> bool:
        """Have storage settle the batch whose write failed; True once it is settled.

        Only that batch is looked at: if it landed, its heads and claims are
        applied as after a success. If the log's end is not where one of the
        two outcomes puts it, something else wrote (e.g. a writer that held
        the lease meanwhile): every cached head and claim is dropped.
        """
        plan = self._unsettled
        if plan is None:
            return True
        try:
            settled = await self._storage.settle_batch(plan.pending)
        except Exception:
            logger.warning("event store: settling a failed write failed", exc_info=True)
            return False
        if self._unsettled is not plan:
            return True  # settled meanwhile by a concurrent call
        self._unsettled = None
        expected = plan.position if settled.landed else self._last_position
        if settled.landed:
            self._apply(plan)
        self._after_reload(settled, expected)
        return True

    async def _reload_state(self) -> bool:
        """Read the log's end again and drop every cache (after an internal error)."""
        try:
            state = await self._storage.load_state()
        except Exception:
            logger.warning("event store: reloading after an internal error failed", exc_info=True)
            return False
        self._needs_reload = False
        self._after_reload(Settled(landed=False, last_position=state.last_position), None)
        return True

    def _after_reload(self, settled: Settled, expected: int | None) -> None:
        """Take the log's end from storage; drop caches unless it is the `expected` one."""
        if settled.last_position != expected:
            logger.warning(
                "event store: storage is at position %d after a failed write (expected %s): "
                "dropping cached heads and claims",
                settled.last_position,
                expected,
            )
            self._heads.clear()
            self._claims.clear()
        if settled.last_position != self._last_position or settled.landed:
            # Events live subscribers never got (the failed batch landed after
            # all, or another writer wrote): send them back to paging from
            # storage, which has them.
            for feed in self._subscribers:
                feed.drop()
            self._subscribers.clear()
        self._last_position = settled.last_position
        self._streams.clear()  # storage is the truth again; refill on demand

    def _settle(self, req: _AppendRequest, outcome: AppendResult | EngineError) -> None:
        if req.settled:
            return
        req.settled = True
        self._slots.release()
        if req.future.done():  # the caller was cancelled
            return
        if isinstance(outcome, AppendResult):
            req.future.set_result(outcome)
        else:
            req.future.set_exception(outcome)

    def _settle_all(self, batch: list[_AppendRequest], error: EngineError) -> None:
        for req in batch:
            self._settle(req, error)

    def _publish(self, records: list[RecordedEvent]) -> None:
        dropped = [feed for feed in self._subscribers if not feed.offer(records)]
        for feed in dropped:
            self._subscribers.discard(feed)

    # --- reads ----------------------------------------------------------------

    async def stream_version(self, aggregate_id: str) -> int:
        """Current version of the stream (0 if it has no events).

        From the head cache, else read from storage (not cached: only the
        writer task fills the cache, so that a read racing a commit can never
        put an old head back).
        """
        head = self._heads.get(aggregate_id)
        if head is not None:
            return head
        found = await self._storage.lookup((aggregate_id,), ())
        return found.heads.get(aggregate_id, 0)

    def head_position(self) -> int:
        """Position of the last committed event (0 if none)."""
        return self._last_position

    @property
    def live_subscribers(self) -> int:
        """Number of subscriptions currently fed live (for observability and tests)."""
        return len(self._subscribers)

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream ordered by version, from_version..to_version inclusive.

        With `until`, the result is the longest run of consecutive versions from
        `from_version` whose timestamps are all <= until: the stream as it was
        at that moment, never a sequence with holes (timestamps come from the
        callers' clocks and need not increase with version).
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        from_version = max(from_version, 1)
        if limit == 0 or (to_version is not None and to_version < from_version):
            return []
        if until is not None:
            to_micros(until)  # validates
        whole = await self._whole_stream(aggregate_id)
        if whole is not None:
            return _slice(whole, from_version, to_version, until, limit)
        events = await self._storage.read_stream(
            aggregate_id, from_version=from_version, to_version=to_version, until=until, limit=limit
        )
        if until is None:
            return events
        prefix: list[RecordedEvent] = []
        for expected_version, event in enumerate(events, start=from_version):
            if event.version != expected_version:
                break
            prefix.append(event)
        return prefix

    async def _whole_stream(self, aggregate_id: str) -> list[RecordedEvent] | None:
        """The whole stream from the cache (filled on a miss), or None if not cacheable."""
        cached = self._streams.get(aggregate_id)
        if cached is not None:
            return cached
        head = self._heads.get(aggregate_id)  # not cached: read from storage directly
        if not head or head > self._streams.max_stream:
            return None
        events = await self._storage.read_stream(
            aggregate_id, from_version=1, to_version=None, until=None, limit=None
        )
        # Cache only what is provably the whole stream now: a commit during the
        # read moved the head, and those events would be missing.
        if (
            events
            and len(events) == self._heads.get(aggregate_id)
            and events[-1].version == len(events)
        ):
            self._streams.put(aggregate_id, events)
        return events

    async def read_all(
        self,
        *,
        after_position: int = 0,
        limit: int = 1000,
        event_types: Sequence[str] = (),
        aggregate_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """Events with position > after_position matching all filters, by position.

        `since` and `until` are inclusive bounds on the event timestamp;
        `limit` is at most MAX_READ_LIMIT.
        """
        _check_limit(limit)
        _check_times(since, until)
        if limit == 0:
            return []
        return await self._storage.read_all(
            after_position=max(after_position, 0),
            limit=limit,
            event_types=tuple(event_types),
            aggregate_id=aggregate_id,
            since=since,
            until=until,
        )

    async def count(
        self,
        *,
        event_types: Sequence[str] = (),
        aggregate_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Number of events matching all filters (same filter semantics as read_all)."""
        _check_times(since, until)
        return await self._storage.count(
            event_types=tuple(event_types), aggregate_id=aggregate_id, since=since, until=until
        )

    async def aggregate_ids(self, *, after: str = "", limit: int) -> list[str]:
        """Every aggregate id with at least one event, ascending, paged by `after`."""
        _check_limit(limit)
        if limit == 0:
            return []
        return await self._storage.aggregate_ids(after=after, limit=limit)

    # --- snapshots --------------------------------------------------------------

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Store a snapshot; its version must be 1..current stream version."""
        current = await self.stream_version(snapshot.aggregate_id)
        if not 1 <= snapshot.version <= current:
            raise ValueError(
                f"snapshot version {snapshot.version} of {snapshot.aggregate_id!r} is not "
                f"within 1..{current} (the stream's current version)"
            )
        to_micros(snapshot.created_at)  # validates
        await self._storage.save_snapshot(snapshot)
        cached = self._snapshots.get(snapshot.aggregate_id)
        if cached is None or cached.version <= snapshot.version:
            self._remember(snapshot.aggregate_id, snapshot)

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        """The snapshot with the highest version, if any.

        Served from a bounded write-through cache: this process is the only
        writer of snapshots, so a cached latest snapshot cannot be stale.
        """
        if aggregate_id in self._snapshots:
            self._snapshots.move_to_end(aggregate_id)
            return self._snapshots[aggregate_id]
        found = await self._storage.latest_snapshot(aggregate_id)
        # "No snapshot" is cached too: only this process writes snapshots.
        self._remember(aggregate_id, found)
        return found

    def _remember(self, aggregate_id: str, snapshot: SnapshotRecord | None) -> None:
        self._snapshots[aggregate_id] = snapshot
        self._snapshots.move_to_end(aggregate_id)
        if len(self._snapshots) > _SNAPSHOT_CACHE_SIZE:
            self._snapshots.popitem(last=False)

    # --- subscriptions ------------------------------------------------------------

    async def subscribe(
        self, from_position: int = 0, *, heartbeat: float = 5.0
    ) -> AsyncGenerator[RecordedEvent | Checkpoint, None]:
        """Every event with position > from_position, in order, exactly once; then live.

        History is paged from storage; then the subscription registers for live
        events, reads from storage the events committed between its last read
        and the registration, and continues from its live buffer. Registration
        and reading the head position happen in one synchronous step, and the
        writer publishes in the same step as it moves the head, so the switch
        has neither gap nor duplicate. A subscriber whose buffer overflows is
        dropped from live delivery and goes back to paging from storage.
        Yields Checkpoint(last delivered position) after `heartbeat` idle
        seconds. Ends when the store closes. Closing the generator unregisters it.
        """
        if heartbeat <= 0:
            raise ValueError("heartbeat must be > 0")
        last = max(from_position, 0)
        while not self._closed:
            # Catch up from storage until we have what was committed when we looked.
            while last < self._last_position and not self._closed:
                page = await self._page(last, _SUBSCRIPTION_PAGE)
                if page is None:
                    return
                if not page:
                    raise StorageUnavailable(
                        f"storage returned no events after position {last} although the "
                        f"store is at position {self._last_position}"
                    )
                for event in page:
                    yield event
                    last = event.position
            if self._closed:
                return
            feed = _LiveFeed(self._subscriber_buffer)
            self._subscribers.add(feed)
            registered_at = self._last_position  # same synchronous step as the add above
            try:
                # Events committed between the catch-up's last read and registration.
                while last < registered_at and not feed.dropped:
                    page = await self._page(last, min(_SUBSCRIPTION_PAGE, registered_at - last))
                    if page is None:
                        return
                    if not page:
                        raise StorageUnavailable(
                            f"storage returned no events after position {last}"
                        )
                    for event in page:
                        yield event
                        last = event.position
                while not feed.dropped and not self._closed:
                    if not feed.buffer:
                        feed.wakeup.clear()
                        try:
                            async with asyncio.timeout(heartbeat):
                                await feed.wakeup.wait()
                        except TimeoutError:
                            yield Checkpoint(last)
                        continue
                    event = feed.buffer.popleft()
                    if event.position <= last:
                        continue  # already read from storage while catching up
                    if event.position != last + 1:
                        feed.drop()  # cannot happen by construction; storage has the truth
                        break
                    yield event
                    last = event.position
            finally:
                self._subscribers.discard(feed)

    async def _page(self, after_position: int, limit: int) -> list[RecordedEvent] | None:
        """The next events of the log for a subscription; None once the store is closed."""
        try:
            return await self._storage.read_all(
                after_position=after_position,
                limit=limit,
                event_types=(),
                aggregate_id=None,
                since=None,
                until=None,
            )
        except StorageUnavailable:
            if self._closed:  # the storage went away with the store: just end
                return None
            raise


def _check_limit(limit: int) -> None:
    if not 0 <= limit <= MAX_READ_LIMIT:
        raise ValueError(f"limit must be within 0..{MAX_READ_LIMIT}, got {limit}")


def _check_times(since: datetime | None, until: datetime | None) -> None:
    for moment in (since, until):
        if moment is not None:
            to_micros(moment)  # validates: aware and within range


def _slice(
    events: list[RecordedEvent],
    from_version: int,
    to_version: int | None,
    until: datetime | None,
    limit: int | None,
) -> list[RecordedEvent]:
    """What `read_stream` returns, cut from a whole stream (index = version - 1)."""
    end = len(events) if to_version is None else min(to_version, len(events))
    picked = events[from_version - 1 : end]
    if until is not None:
        for i, event in enumerate(picked):
            if event.timestamp > until:
                picked = picked[:i]  # the stream as it was: stop at the first later event
                break
    if limit is not None:
        picked = picked[:limit]
    return picked
