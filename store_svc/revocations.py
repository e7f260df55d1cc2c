"""store_svc's revocation view, fed straight from its own engine (no gRPC hop).

Same rules as ``service_kit.revocation_feed`` (which command_svc and
query_svc use): start at the first event of the last ``horizon`` seconds,
ready once the head seen at start is read, then follow live, restarting
from the last position read if the subscription fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

from service_kit.background import Restarting
from service_kit.revocation import RevocationView
from service_kit.revocation_feed import ended_by
from store_svc.engine import EventStore, RecordedEvent

__all__ = ["EngineRevocationFeed"]

log = logging.getLogger(__name__)


class EngineRevocationFeed:
    """Keeps ``view`` current from ``store.subscribe`` in a background task."""

    def __init__(self, store: EventStore, view: RevocationView, *, heartbeat: float = 5.0) -> None:
        self._store = store
        self._view = view
        self._heartbeat = heartbeat
        self._started = False
        self._loop = Restarting("store revocation view", self._run_once)
        self.stop = self._loop.stop

    async def start(self) -> None:
        """Positions the view (one storage read), then follows in the background."""
        await self._first_position()
        self._loop.start()

    async def _first_position(self) -> None:
        since = datetime.fromtimestamp(time.time() - self._view.horizon, tz=UTC)
        head = self._store.head_position()
        first = await self._store.read_all(after_position=0, limit=1, since=since)
        start = first[0].position - 1 if first else head
        self._view.start_from(start, ready_at=head)
        self._started = True

    async def _run_once(self) -> None:
        if not self._started:
            await self._first_position()
        async for item in self._store.subscribe(self._view.position, heartbeat=self._heartbeat):
            if isinstance(item, RecordedEvent):
                self._apply(item)
            else:
                self._view.advance(item.position)
            self._loop.progressed()
        await asyncio.Event().wait()  # the store closed: nothing more will come

    def _apply(self, record: RecordedEvent) -> None:
        ended = None
        try:
            ended = ended_by(
                record.event_type,
                json.loads(record.payload),
                aggregate_id=record.aggregate_id,
                version=record.version,
                occurred_at=record.timestamp,
            )
        except ValueError:
            log.error("revocation view: unreadable payload at position %d", record.position)
        if ended is None:
            self._view.advance(record.position)
        else:
            self._view.apply(ended, record.position)
