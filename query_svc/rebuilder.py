"""Rebuilding the read model from position 0 into fresh tables, then swapping them in.

Steps (one rebuild at a time per process):
1. Create fresh tables (``<name>_rebuild``, leftovers of a crashed rebuild
   dropped first) and read the store's head position H: the ``total``.
2. Replay every event from position 0 (with secrets: the password hashes are
   needed) into them, batch by batch, each batch with its checkpoint, as the
   live projector does; report progress along the way.
3. Once at H, pause the live projector (between two of its commits), read
   its position L, replay on up to L if the live tables are ahead, then drop
   the live tables and rename the fresh ones in ONE transaction; tell the
   projector its new position, and let it go on from there.

Queries keep reading the old tables until the swap commits and the new ones
right after; the applied position never goes back, so read-your-writes
waits stay valid across a rebuild. A rebuild that fails or whose caller
goes away drops its fresh tables and leaves the live ones untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

import grpc

from query_svc.db import LIVE, Database, Tables, create_tables, define_tables, drop_tables, swap_in
from query_svc.projector import Projector
from query_svc.source import EventSource, SourceItem
from query_svc.writer import new_events, write_batch
from service_kit.batching import batches
from service_kit.errors import ServiceError

log = logging.getLogger(__name__)

REBUILD_SUFFIX: Final = "_rebuild"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a rebuild is: events applied, events to apply, events/s, seconds left."""

    done: int
    total: int
    rate: float
    eta_seconds: float
    finished: bool = False


class Rebuilder:
    """Runs rebuilds (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Database,
        projector: Projector,
        source: EventSource,
        batch_max: int = 2000,
        read_ahead: int = 20_000,
        progress_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._projector = projector
        self._source = source
        self._batch_max = batch_max
        self._read_ahead = read_ahead
        self._interval = progress_interval
        self._clock = clock
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(self) -> AsyncGenerator[Progress, None]:
        """Rebuilds, yielding progress; the last item has ``finished=True``."""
        if self._lock.locked():
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "a rebuild is already running")
        async with self._lock:
            fresh = define_tables(suffix=REBUILD_SUFFIX, token=uuid.uuid4().hex[:12])
            async with self._db.write() as conn:
                await drop_tables(conn, fresh)
                await create_tables(conn, fresh)
            try:
                async for progress in self._replay(fresh):
                    yield progress
            except BaseException:
                await self._discard(fresh)
                raise

    async def _replay(self, fresh: Tables) -> AsyncIterator[Progress]:
        total = await self._source.head_position()
        started = self._clock()
        run = _Run(db=self._db, tables=fresh)

        def progress(finished: bool = False) -> Progress:
            elapsed = max(self._clock() - started, 1e-9)
            rate = run.position / elapsed
            left = max(total - run.position, 0)
            eta = left / rate if rate > 0 else 0.0
            return Progress(run.position, max(total, run.position), rate, eta, finished)

        yield progress()
        stream = self._source.events(from_position=0)
        feed = batches(stream, max_size=self._batch_max, read_ahead=self._read_ahead)
        try:
            last_report = self._clock()
            while run.position < total:
                await run.apply(await _next(feed, run.position))
                if self._clock() - last_report >= self._interval:
                    last_report = self._clock()
                    yield progress()
            async with self._projector.paused() as live_position:
                while run.position < live_position:
                    await run.apply(await _next(feed, run.position))
                async with self._db.write() as conn:
                    await swap_in(conn, live=LIVE, fresh=fresh)
                self._projector.adopt(run.position)
        finally:
            await feed.aclose()
        log.info("read model rebuilt: %d events, swapped in", run.position)
        yield progress(finished=True)

    async def _discard(self, fresh: Tables) -> None:
        # Best effort: the tables are recreated (dropped first) by the next rebuild.
        with contextlib.suppress(Exception):
            async with self._db.write() as conn:
                await drop_tables(conn, fresh)


async def _next(feed: AsyncIterator[list[SourceItem]], position: int) -> list[SourceItem]:
    try:
        return await anext(feed)
    except StopAsyncIteration:
        raise ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            f"the event store ended the subscription at position {position}; rebuild abandoned",
        ) from None


@dataclass(slots=True)
class _Run:
    """The fresh tables' side of a rebuild: where it is, and how to move on."""

    db: Database
    tables: Tables
    position: int = 0

    async def apply(self, batch: list[SourceItem]) -> None:
        events, gap = new_events(batch, after=self.position)
        if events:
            last = events[-1].position
            async with self.db.write() as conn:
                await write_batch(conn, self.tables, events, expected=self.position, position=last)
            self.position = last
        if gap is not None:
            raise gap
