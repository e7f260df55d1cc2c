"""The event source of the embedded stack: store_svc's catch-up subscription.

``Subscribe(from_position, include_secrets=True)`` with the service identity
(the projection needs the password hashes for logins; the store grants
secrets to services only).

Every call has a deadline: a subscription is re-opened transparently from
the last position it yielded when its deadline (``stream_lifetime``) passes,
so the consumer sees one endless, gapless stream. A subscription that stays
silent for three heartbeats is considered dead and fails, so the projector
reconnects instead of waiting forever on a half-open connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from query_svc.source import Checkpoint, SourceItem, StoredEvent
from service_kit import deadlines
from service_kit.structs import struct_to_dict
from service_kit.timeconv import to_datetime

MetadataFn = Callable[[], list[tuple[str, str]]]

DEFAULT_HEARTBEAT_SECONDS: Final = 5
DEFAULT_STREAM_LIFETIME: Final = 900.0


class SourceStalled(Exception):
    """The subscription sent nothing, not even a heartbeat, for too long."""


def stored_event(event: pb.Event) -> StoredEvent:
    """The source-neutral form of a store Event message."""
    return StoredEvent(
        position=event.position,
        event_id=event.event_id,
        aggregate_id=event.aggregate_id,
        event_type=event.event_type,
        version=event.version,
        occurred_at=to_datetime(event.timestamp),
        payload=struct_to_dict(event.payload),
        traceparent=event.traceparent,
    )


SUBSCRIBE_MAX_BATCH = 500


class StoreSubscriptionSource:
    """An :class:`~query_svc.source.EventSource` over ``EventStoreService.Subscribe``."""

    def __init__(
        self,
        *,
        channel: grpc.aio.Channel,
        metadata: MetadataFn,
        timeout: float,
        heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
        stream_lifetime: float = DEFAULT_STREAM_LIFETIME,
    ) -> None:
        self._stub = pb_grpc.EventStoreServiceStub(channel)
        self._metadata = metadata
        self._timeout = timeout
        self._heartbeat = heartbeat_seconds
        self._lifetime = stream_lifetime

    async def events(self, *, from_position: int) -> AsyncIterator[SourceItem]:
        """Every event after ``from_position`` in order, with checkpoints; endless."""
        position = from_position
        while True:
            call = self._stub.Subscribe(
                pb.SubscribeRequest(
                    from_position=position,
                    heartbeat_seconds=self._heartbeat,
                    include_secrets=True,
                    # Batches of what is already available: a long catch-up
                    # (a rebuild) is bound by messages, not events, otherwise.
                    max_batch=SUBSCRIBE_MAX_BATCH,
                ),
                metadata=self._metadata(),
                timeout=self._lifetime,
            )
            try:
                async for item in self._read(call):
                    position = item.position if isinstance(item, StoredEvent) else position
                    yield item
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                continue  # the stream's lifetime is over: resubscribe where we are
            finally:
                call.cancel()
            return  # the store ended the stream (it is shutting down)

    async def _read(self, call: grpc.aio.UnaryStreamCall[Any, Any]) -> AsyncIterator[SourceItem]:
        stall_after = 3.0 * self._heartbeat
        iterator = call.__aiter__()
        while True:
            try:
                async with asyncio.timeout(stall_after):
                    message = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise SourceStalled(
                    f"no event or heartbeat from the store for {stall_after:.0f}s"
                ) from None
            kind = message.WhichOneof("message")
            if kind == "batch":
                for event in message.batch.events:
                    yield stored_event(event)
            elif kind == "event":
                yield stored_event(message.event)
            elif kind == "checkpoint":
                yield Checkpoint(message.checkpoint.position)

    async def head_position(self) -> int:
        """The store's last position: positions are gapless from 1, so it is the count."""
        response = await self._stub.CountEvents(
            pb.CountEventsRequest(),
            metadata=self._metadata(),
            timeout=deadlines.budget(self._timeout),
        )
        return int(response.count)
