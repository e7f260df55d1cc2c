"""The event store, as command_svc sees it: load a user, append its new events.

``EventStorePort`` is the interface the handlers depend on (unit tests use an
in-memory fake); ``StoreClient`` implements it over a grpc.aio channel.

Invariants of ``StoreClient``:
- every call carries a deadline (``timeout``, cut to the command's own deadline:
  :mod:`service_kit.deadlines`) and the service's identity
  (``authorization`` from ``service_kit.auth.service_metadata``); appends go
  over ``AppendStream`` (``command_svc.append_stream``), each with its own
  deadline and the command's correlation and causation ids;
- it raises only the ``command_svc.errors.StoreError`` family;
- ``append`` resends the same event ids when the store was unreachable or
  the stream broke before it answered: the store's event-id idempotency
  makes the retry safe even if the first attempt was in fact stored. Given
  several store addresses (a leader and its standby), it resends them to
  the next address too, when one answered UNAVAILABLE or nothing in half the
  time left (service_kit.leader_channel).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, struct_pb2

import domain
from command_svc.append_stream import AppendStreams, AppendStreamUnsupported
from command_svc.errors import StoreUnavailable, StoreUnreached, store_error
from service_kit import deadlines, metadata, tracing
from service_kit.leader_channel import LeaderChannel, leader_channel
from service_kit.structs import struct_to_dict
from service_kit.timeconv import to_datetime

__all__ = [
    "AGGREGATE_TYPE",
    "Appended",
    "Claims",
    "Created",
    "EventStorePort",
    "Loaded",
    "StoreClient",
    "Trace",
    "proposed_event",
]

log = logging.getLogger(__name__)

AGGREGATE_TYPE = "user"
# Pauses before resending an append the store did not receive (UNAVAILABLE).
_UNAVAILABLE_BACKOFF = (0.05, 0.2)

AuthMetadata = Callable[[], list[tuple[str, str]]]


class Loaded(NamedTuple):
    """A user's current state (None if it has no events) and its stream version."""

    state: domain.UserState | None
    version: int


class Appended(NamedTuple):
    """The stream version after an append and the global position of its last event."""

    version: int
    last_position: int


Claims = Sequence[tuple[str, str]]
"""Extra (namespace, value) claims an append's first event takes, beside its email claims."""


class Created(NamedTuple):
    """A ``user.created`` event as the admin roster reads it."""

    position: int
    user_id: str
    role: str


class Trace(NamedTuple):
    """Where a command came from: the request's correlation id, the command's id,
    and the W3C ``traceparent`` of the request's span ("" while tracing is off)."""

    correlation_id: str
    causation_id: str
    traceparent: str = ""


class EventStorePort(Protocol):
    """What the command handlers need from the event store."""

    async def load(self, user_id: str) -> Loaded:
        """Snapshot plus newer events, folded; ``(None, 0)`` for an unknown user."""
        ...

    async def append(
        self,
        *,
        user_id: str,
        expected_version: int,
        events: Sequence[domain.DomainEvent],
        event_ids: Sequence[str],
        trace: Trace,
        extra_claims: Claims = (),
    ) -> Appended:
        """Append if the stream is at ``expected_version`` (0: must not exist).

        Raises ``StoreConflict`` if it is not, ``ClaimConflict`` if an event
        takes a claim another user holds, ``StoreUnavailable``.
        """
        ...

    async def count_events(self, event_type: str) -> int:
        """How many events of this type the store holds."""
        ...

    async def created_after(self, position: int, limit: int) -> list[Created]:
        """``user.created`` events after ``position``, oldest first, at most ``limit``."""
        ...


def proposed_event(
    event: domain.DomainEvent, event_id: str, extra_claims: Claims = ()
) -> pb.ProposedEvent:
    """The wire form of a domain event, with the email claims it takes and releases."""
    payload = struct_pb2.Struct()
    payload.update(domain.event_to_payload(event))
    changes = domain.claims_for(event)
    ns = domain.EMAIL_CLAIM_NAMESPACE
    return pb.ProposedEvent(
        event_id=event_id,
        event_type=event.EVENT_TYPE,
        payload=payload,
        claims=[pb.Claim(namespace=ns, value=v) for v in changes.take]
        + [pb.Claim(namespace=n, value=v) for n, v in extra_claims],
        releases=[pb.Claim(namespace=ns, value=v) for v in changes.release],
    )


def domain_event(event: pb.Event) -> domain.DomainEvent:
    """A stored event (unredacted, from LoadAggregate) as a domain event."""
    return domain.event_from_payload(
        event.event_type,
        struct_to_dict(event.payload),
        aggregate_id=event.aggregate_id,
        version=event.version,
        occurred_at=to_datetime(event.timestamp),
    )


def _store_error(err: grpc.aio.AioRpcError) -> Exception:
    return store_error(err.code(), err.details() or "")


class StoreClient:
    """``EventStorePort`` over gRPC (see the module docstring)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        auth_metadata: AuthMetadata,
        timeout: float,
    ) -> None:
        self._channel = channel
        self._stub = pb_grpc.EventStoreServiceStub(channel)
        self._auth = auth_metadata
        self._timeout = timeout
        self._route: Callable[[], int] = lambda: 0
        if isinstance(channel, LeaderChannel):  # a leader and its standby: follow the leader
            self._route = lambda: channel.current
        self._streams = AppendStreams(self._stub, auth_metadata, route=self._route)
        self._use_streams = True

    @classmethod
    def connect(cls, target: str, *, auth_metadata: AuthMetadata, timeout: float) -> StoreClient:
        """A client on a new insecure channel to ``target`` (``host:port``, or several
        comma-separated: a leader and its standby, followed by
        ``service_kit.leader_channel``), carrying the trace context of each call
        when tracing is on."""
        channel = leader_channel(target, interceptors=tracing.client_interceptors("command_svc"))
        return cls(channel, auth_metadata=auth_metadata, timeout=timeout)

    async def close(self) -> None:
        await self._streams.close()
        await self._channel.close(None)

    async def load(self, user_id: str) -> Loaded:
        try:
            response: pb.LoadAggregateResponse = await self._stub.LoadAggregate(
                pb.LoadAggregateRequest(aggregate_id=user_id),
                timeout=deadlines.budget(self._timeout),
                metadata=self._auth(),
            )
        except grpc.aio.AioRpcError as err:
            raise _store_error(err) from None
        state = (
            domain.state_from_dict(json.loads(response.snapshot_state))
            if response.snapshot_state
            else None
        )
        state = domain.fold((domain_event(e) for e in response.events), state)
        # The version we decided against is the folded one: if the store's
        # head moved between its two reads, the append will say so (ABORTED).
        return Loaded(state, state.version if state is not None else 0)

    async def append(
        self,
        *,
        user_id: str,
        expected_version: int,
        events: Sequence[domain.DomainEvent],
        event_ids: Sequence[str],
        trace: Trace,
        extra_claims: Claims = (),
    ) -> Appended:
        if len(events) != len(event_ids) or not events:
            raise ValueError("append needs one event id per event, and at least one event")
        request = pb.AppendRequest(
            aggregate_id=user_id,
            aggregate_type=AGGREGATE_TYPE,
            events=[
                proposed_event(e, i, extra_claims if n == 0 else ())
                for n, (e, i) in enumerate(zip(events, event_ids, strict=True))
            ],
        )
        if expected_version == 0:
            request.no_stream.CopyFrom(empty_pb2.Empty())
        else:
            request.exact = expected_version
        leader = self._channel if isinstance(self._channel, LeaderChannel) else None
        pauses = _UNAVAILABLE_BACKOFF if leader is None else (0.05,) * (leader.tries - 1)
        for attempt, pause in enumerate((*pauses, None), start=1):
            timeout = deadlines.budget(self._timeout)  # never past the command's deadline
            this_try = (
                timeout if leader is None else leader.try_budget(timeout, attempt, len(pauses) + 1)
            )
            route = self._route()
            try:
                async with asyncio.timeout(this_try):
                    response = await self._append_once(request, trace)
            except TimeoutError:
                if leader is not None and pause is not None:
                    # No answer in half the time left: a paused leader, maybe
                    # succeeded by the next address. Same event ids there: safe.
                    leader.failed(route, f"no answer to an append in {this_try:.1f}s")
                    continue
                self._streams.abandon_if_stalled(self._timeout)
                raise StoreUnavailable(
                    f"DEADLINE_EXCEEDED: the store did not answer within {timeout:.1f}s"
                ) from None
            except StoreUnreached as exc:
                if pause is None:
                    raise
                if leader is not None:
                    leader.failed(route, str(exc))
                await asyncio.sleep(pause)
                continue
            return Appended(response.version, response.positions[-1] if response.positions else 0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def count_events(self, event_type: str) -> int:
        try:
            response: pb.CountEventsResponse = await self._stub.CountEvents(
                pb.CountEventsRequest(event_type=event_type),
                timeout=self._timeout,
                metadata=self._auth(),
            )
        except grpc.aio.AioRpcError as err:
            raise _store_error(err) from None
        return int(response.count)

    async def created_after(self, position: int, limit: int) -> list[Created]:
        try:
            response: pb.ListEventsResponse = await self._stub.ListEvents(
                pb.ListEventsRequest(
                    event_type=domain.UserCreated.EVENT_TYPE, after_position=position, limit=limit
                ),
                timeout=self._timeout,
                metadata=self._auth(),
            )
        except grpc.aio.AioRpcError as err:
            raise _store_error(err) from None
        return [
            Created(e.position, e.aggregate_id, str(struct_to_dict(e.payload).get("role", "")))
            for e in response.events
        ]

    async def _append_once(self, request: pb.AppendRequest, trace: Trace) -> pb.AppendResponse:
        if self._use_streams:
            try:
                return await self._streams.append(
                    request,
                    correlation_id=trace.correlation_id,
                    causation_id=trace.causation_id,
                    traceparent=trace.traceparent,
                )
            except AppendStreamUnsupported:
                # An older store_svc (a rolling deploy): unary Append from now on.
                log.warning("the event store has no AppendStream; appending call by call")
                self._use_streams = False
        call_metadata = [
            *self._auth(),
            (metadata.CORRELATION_ID, trace.correlation_id),
            (metadata.CAUSATION_ID, trace.causation_id),
        ]
        try:
            response: pb.AppendResponse = await self._stub.Append(
                request, timeout=deadlines.budget(self._timeout), metadata=call_metadata
            )
        except grpc.aio.AioRpcError as err:
            raise _store_error(err) from None
        return response
