"""The projector: keeps the read model in step with an event source, exactly once.

Invariants:
- ``applied_position`` is the checkpoint committed with the rows: every event
  up to it is reflected, none after it. It only moves after a commit.
- An event at or below ``applied_position`` is a no-op (redelivery after a
  reconnect); an event after a gap is never applied: the projector drops the
  connection and resubscribes from its checkpoint. No event is ever skipped.
- Another projector on the same read model (a replica) committing first is
  no failure: the rows are shared, so it takes that checkpoint and goes on
  with the rest of its batch at once (events at or below it are no-ops).
- On any failure (source down, database down, a checkpoint that did not move
  forward) it waits with exponential backoff, re-reads its checkpoint from
  the database and resubscribes from there.
- :meth:`paused` holds off batches (between two commits), so a rebuild can
  swap the tables while nothing writes to them; :meth:`adopt` then moves
  ``applied_position`` to the swapped-in checkpoint.
- :meth:`stall` says when it is known stuck: the store's head (as the
  health check last saw it, :meth:`note_head`) is ahead and the applied
  position has not moved for ``stall_after`` seconds, or it has been failing
  (source or database down) that long. ``min_position`` waits then answer
  at once instead of waiting for a position that cannot come.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from opentelemetry.trace import SpanKind

from query_svc.db import LIVE, Database, Tables, read_checkpoint
from query_svc.projection import ProjectionError
from query_svc.source import EventSource, SourceItem, StoredEvent
from query_svc.writer import new_events, write_batch
from service_kit import dependency_errors, tracing
from service_kit.batching import batches
from service_kit.observability import PROJECTOR_ERRORS
from service_kit.tasks import cancel_and_wait

PROJECT_SPAN = "user-events process"  # a projected event, in its request's trace
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stall:
    """The projector is stuck at ``position`` since ``seconds`` (see :meth:`Projector.stall`)."""

    position: int
    head: int
    seconds: float
    source: str
    error: str

    def describe(self) -> str:
        """E.g. "read model stalled at position 310 for 7 s (store head 550; event source:
        Kafka topic user-events at kafka:19092)"."""
        parts = []
        if self.head > self.position:
            parts.append(f"store head {self.head}")
        if self.source:
            parts.append(f"event source: {self.source}")
        if self.error:
            parts.append(f"last error: {self.error}")
        where = f" ({'; '.join(parts)})" if parts else ""
        return f"read model stalled at position {self.position} for {self.seconds:.0f} s{where}"


class Projector:
    """Applies a source's events to ``tables`` in batches (see module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        source: EventSource,
        tables: Tables = LIVE,
        batch_max: int = 2000,
        read_ahead: int = 10_000,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
        stall_after: float = 3.0,
        source_name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._source = source
        self._tables = tables
        self._batch_max = batch_max
        self._read_ahead = read_ahead
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._backoff = backoff_initial
        self._applied = 0
        self._source_position = 0
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_error: str = ""
        self.events_applied = 0
        self.source_name = source_name
        self._stall_after = stall_after
        self._clock = clock
        self._progress_at = clock()  # when applied_position last moved
        self._known_head = 0  # the store's head as the health check last saw it
        self._behind_since: float | None = None  # since when known_head > applied
        self._failing_since: float | None = None  # since when every attempt failed
        # Store time of the newest applied event (for the lag-in-seconds gauge).
        self.applied_event_time: datetime | None = None

    # -- observing -----------------------------------------------------------

    @property
    def applied_position(self) -> int:
        """Position of the last event reflected in the committed read model."""
        return self._applied

    @property
    def source_position(self) -> int:
        """Highest position the source has announced (events or checkpoints)."""
        return max(self._source_position, self._applied)

    async def wait_for(self, position: int, *, within: float) -> bool:
        """Waits until ``applied_position >= position``; False if ``within`` seconds pass first."""
        deadline = time.monotonic() + within
        while self._applied < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                return self._applied >= position
        return True

    @property
    def known_head(self) -> int:
        """The store's head position as last noted (0 before the first note)."""
        return self._known_head

    def note_head(self, head: int) -> None:
        """The store's head right now (from a health check): where the projector should be."""
        self._known_head = head
        if head <= self._applied:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = self._clock()

    def stall(self) -> Stall | None:
        """Why the projector cannot be expected to move soon, or None.

        Stalled: the noted head is ahead and nothing was applied for
        ``stall_after`` seconds since that was first seen; or every attempt
        failed (event source or database down) for ``stall_after`` seconds.
        """
        now = self._clock()
        since: float | None = None
        if self._known_head > self._applied and self._behind_since is not None:
            since = max(self._behind_since, self._progress_at)
        if self._failing_since is not None:
            failing = max(self._failing_since, self._progress_at)
            since = failing if since is None else min(since, failing)
        if since is None or now - since < self._stall_after:
            return None
        return Stall(
            position=self._applied,
            head=self._known_head,
            seconds=now - since,
            source=self.source_name,
            error=self.last_error,
        )

    async def wait_unless_stalled(
        self, position: int, *, within: float, poll: float = 0.25
    ) -> bool | Stall:
        """Like :meth:`wait_for`, but gives up as soon as the projector is known stalled
        (then returns the :class:`Stall`; looked at every ``poll`` seconds)."""
        deadline = self._clock() + within
        while (stall := self.stall()) is None:
            left = deadline - self._clock()
            if await self.wait_for(position, within=max(min(left, poll), 0.0)):
                return True
            if left <= poll:
                return False
        return stall

    def _set_applied(self, position: int) -> None:
        if position < self._applied:
            log.warning("read model checkpoint went back from %d to %d", self._applied, position)
        if position != self._applied:
            self._progress_at = self._clock()
        if position >= self._known_head:
            self._behind_since = None
        self._applied = position
        # Wake every waiter and arm a fresh event for the next change.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Reads the checkpoint and starts following the source in the background."""
        if self._task is not None:
            raise RuntimeError("projector already started")
        async with self._db.read() as conn:
            self._set_applied(await read_checkpoint(conn, self._tables))
        self._task = asyncio.create_task(self._run(), name="projector")

    async def stop(self) -> None:
        """Stops following; whatever was committed stays committed."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @asynccontextmanager
    async def paused(self) -> AsyncIterator[int]:
        """Holds off batches; yields the applied position, which stays put meanwhile."""
        async with self._lock:
            yield self._applied

    def adopt(self, position: int) -> None:
        """While :meth:`paused`: the tables now hold a checkpoint at ``position``."""
        if not self._lock.locked():
            raise RuntimeError("adopt() is only allowed while paused")
        self._set_applied(position)

    # -- the loop ------------------------------------------------------------

    async def _run(self) -> None:
        first = True
        while True:
            try:
                if not first:
                    # Under the lock: a rebuild may be swapping the tables right now.
                    async with self._lock, self._db.read() as conn:
                        self._set_applied(await read_checkpoint(conn, self._tables))
                first = False
                await self._follow()
                log.warning("event source ended at position %d; reconnecting", self._applied)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                PROJECTOR_ERRORS.inc()
                self.last_error = dependency_errors.describe(exc)
                if self._failing_since is None:
                    self._failing_since = self._clock()
                # An outage (store, Kafka or database unreachable) usually heals by
                # itself; a projection error (gap, malformed event) needs a human;
                # anything else is a bug, logged with its traceback.
                outage = dependency_errors.classify(exc) is not None
                log.log(
                    logging.WARNING if outage else logging.ERROR,
                    "projector at position %d failed (%s); retrying in %.2fs",
                    self._applied,
                    self.last_error,
                    self._backoff,
                    exc_info=None if outage or isinstance(exc, ProjectionError) else exc,
                )
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._backoff_max)

    async def _follow(self) -> None:
        stream = self._source.events(from_position=self._applied)
        async for batch in batches(stream, max_size=self._batch_max, read_ahead=self._read_ahead):
            await self._apply(batch)

    async def _write(self, events: list[StoredEvent]) -> None:
        """Commits ``events`` (after ``applied_position``) and the checkpoint; under the lock."""
        expected, position = self._applied, events[-1].position
        started = time.time_ns()
        async with self._db.write() as conn:
            changes = await write_batch(
                conn, self._tables, events, expected=expected, position=position
            )
        tracing.record_spans(
            "query_svc",
            PROJECT_SPAN,
            (e.traceparent for e in events),
            start_ns=started,
            end_ns=time.time_ns(),
            kind=SpanKind.CONSUMER,
        )
        if changes.erased:
            await self._db.purge_old_pages()
        self._set_applied(position)
        self.applied_event_time = events[-1].occurred_at
        self.events_applied += len(events)
        self._backoff = self._backoff_initial

    async def _checkpoint_past(self, expected: int) -> int | None:
        """The stored checkpoint if it is past ``expected`` (another projector's commit)."""
        try:
            async with self._db.read() as conn:
                stored = await read_checkpoint(conn, self._tables)
        except Exception:
            return None
        return stored if stored > expected else None

    async def _apply(self, batch: list[SourceItem]) -> None:
        for item in batch:
            self._source_position = max(self._source_position, item.position)
        async with self._lock:
            events, gap = new_events(batch, after=self._applied)
            while events:
                expected = self._applied
                try:
                    await self._write(events)
                    break
                except Exception:
                    # Another projector on this read model (a replica) committed
                    # first: its checkpoint moved past ours (PostgreSQL may say so
                    # with a unique violation on its rows before our compare-and-set).
                    # Its rows are ours too: take its checkpoint and write what is
                    # left of the batch now. The error path would back off and
                    # resubscribe, holding every min_position read at this replica
                    # that long. The loop ends: each turn the checkpoint moved
                    # forward, and the batch is finite.
                    moved_to = await self._checkpoint_past(expected)
                    if moved_to is None:
                        raise  # a real failure: the error path
                    self._set_applied(moved_to)
                    events, gap = new_events(batch, after=moved_to)
            if gap is not None:
                raise gap
            # The source delivered (events or a heartbeat) and the rows are written:
            # whatever failed before works again.
            self.last_error = ""
            self._failing_since = None
