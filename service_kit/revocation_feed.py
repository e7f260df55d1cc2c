"""Keeping a :class:`~service_kit.revocation.RevocationView` current from the event store.

command_svc and query_svc run one :class:`RevocationFeed` each (store_svc
feeds its view from its own engine, see ``store_svc.app``):

1. at start it asks the store for the first event of the last ``horizon``
   seconds (``ListEvents(since=..., limit=1)``) and its head (``CountEvents``);
2. it subscribes from just before that event with an ``event_types`` filter
   (only :data:`domain.SESSION_ENDING_TYPES` travel) and applies each event;
   the view is ready once the feed has read up to the head seen in 1;
3. when the stream breaks it resubscribes from the last position read, with
   capped exponential backoff, for as long as the service runs.

The feed never makes a call on a request's path: a request only reads the view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

import domain
from service_kit.background import Restarting
from service_kit.revocation import Ended, RevocationView
from service_kit.structs import struct_to_dict
from service_kit.timeconv import to_datetime, to_timestamp

__all__ = ["RevocationFeed", "ended_by"]

log = logging.getLogger(__name__)

MetadataFn = Callable[[], list[tuple[str, str]]]
_BATCH = 500


def _describe(exc: Exception) -> str | None:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name} {exc.details()}"
    return None


def ended_by(
    event_type: str,
    payload: dict[str, object],
    *,
    aggregate_id: str,
    version: int,
    occurred_at: datetime,
) -> Ended | None:
    """The sessions a stored event ended (None for any other event)."""
    if event_type not in domain.SESSION_ENDING_TYPES:
        return None
    try:
        event = domain.event_from_payload(
            event_type, payload, aggregate_id=aggregate_id, version=version, occurred_at=occurred_at
        )
    except domain.DomainError:
        log.error("revocation feed: cannot read a %s event of %s", event_type, aggregate_id)
        return None
    ended = domain.sessions_ended(event)
    if ended is None:
        return None
    return Ended(
        user_id=ended.user_id,
        version=ended.version,
        session_id=ended.session_id,
        occurred_at=occurred_at.timestamp(),
        reason=ended.reason,
        kept_session_id=ended.kept_session_id,
    )


class RevocationFeed:
    """Feeds a view from ``EventStoreService.Subscribe`` (see the module docstring)."""

    def __init__(
        self,
        *,
        channel: grpc.aio.Channel,
        metadata: MetadataFn,
        view: RevocationView,
        timeout: float = 5.0,
        heartbeat_seconds: int = 5,
        backoff_max: float = 5.0,
    ) -> None:
        self._stub = pb_grpc.EventStoreServiceStub(channel)
        self._metadata = metadata
        self._view = view
        self._timeout = timeout
        self._heartbeat = heartbeat_seconds
        self._started = False
        self._loop = Restarting(
            "revocation feed", self._run_once, max_pause=backoff_max, describe=_describe
        )
        self.start, self.stop = self._loop.start, self._loop.stop

    async def _first_position(self) -> None:
        """Where to start: just before the first event of the horizon; ready at the head."""
        since = datetime.fromtimestamp(time.time() - self._view.horizon, tz=UTC)
        head = await self._stub.CountEvents(
            pb.CountEventsRequest(), metadata=self._metadata(), timeout=self._timeout
        )
        first = await self._stub.ListEvents(
            pb.ListEventsRequest(since=to_timestamp(since), limit=1),
            metadata=self._metadata(),
            timeout=self._timeout,
        )
        start = first.events[0].position - 1 if first.events else int(head.count)
        self._view.start_from(start, ready_at=int(head.count))
        self._started = True

    async def _run_once(self) -> None:
        if not self._started:
            await self._first_position()
        await self._follow()

    async def _follow(self) -> None:
        call = self._stub.Subscribe(
            pb.SubscribeRequest(
                from_position=self._view.position,
                heartbeat_seconds=self._heartbeat,
                max_batch=_BATCH,
                event_types=list(domain.SESSION_ENDING_TYPES),
            ),
            metadata=self._metadata(),
        )
        try:
            async for message in call:
                kind = message.WhichOneof("message")
                if kind == "checkpoint":
                    self._view.advance(message.checkpoint.position)
                    continue
                events = message.batch.events if kind == "batch" else [message.event]
                for event in events:
                    self._apply(event)
                self._loop.progressed()
        finally:
            call.cancel()

    def _apply(self, event: pb.Event) -> None:
        ended = ended_by(
            event.event_type,
            struct_to_dict(event.payload),
            aggregate_id=event.aggregate_id,
            version=event.version,
            occurred_at=to_datetime(event.timestamp),
        )
        if ended is None:
            self._view.advance(event.position)
        else:
            self._view.apply(ended, event.position)
