"""The EventStoreService gRPC servicer: message mapping.

All logic lives in the engine (writes, reads, subscriptions) and in
``time_travel`` (folds, snapshots); this module calls them and maps results.
A request's shape (ids, ranges, required fields, who may set
``include_secrets``) is the contract's, checked before a method runs by the
validation and auth interceptors (AppendStream checks each of its requests
itself); what is left here are the domain's rules (known event types,
payloads the domain can fold). Exceptions become statuses via service_kit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from opentelemetry.trace import SpanKind

import domain
from domain.upcasting import stamp
from pii.codec import PayloadCodec
from service_kit import errors, metadata, observability, request_validation, tracing
from service_kit.auth import credentials_expire_at
from service_kit.batching import batches
from service_kit.errors import ServiceError, invalid, invalid_fields
from service_kit.structs import struct_to_dict
from service_kit.timeconv import to_datetime, to_timestamp, utcnow
from store_svc import convert
from store_svc.engine import (
    Claim,
    EventStore,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    SnapshotRecord,
)
from store_svc.engine.model import MAX_TIMESTAMP, MIN_TIMESTAMP
from store_svc.time_travel import TimeTravel, snapshot_dict, snapshot_state

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["EventStoreService"].full_name
TRACED_AS: Final = "store_svc"  # the service name its spans carry
APPEND_SPAN: Final = f"{SERVICE_NAME}/AppendStream.append"
MAX_PAGE = 1000
DEFAULT_LIST_LIMIT = 100


def _moment(ts: Any) -> datetime:
    """A time (within RFC 3339's range: the contract's rule), clamped to the range
    the storage can hold.

    Clamping is exact for every use here: nothing is stored before the
    epoch or after 2105, so "until 2999" and "until 2105" select the same.
    """
    return min(max(to_datetime(ts), MIN_TIMESTAMP), MAX_TIMESTAMP)


def _optional_moment(field: str, request: Any) -> datetime | None:
    return _moment(getattr(request, field)) if request.HasField(field) else None


def _expected(request: pb.AppendRequest) -> Any:
    which = request.WhichOneof("expected_version")
    if which == "any":
        return ExpectedVersion.ANY
    if which == "no_stream":
        return ExpectedVersion.NO_STREAM
    if which == "exact":
        return ExpectedVersion.exact(request.exact)
    # Unreachable for a checked request (the oneof is required by the contract).
    raise invalid("expected_version", "give exactly one of any, no_stream, exact")


# One encoder for every payload: json.dumps builds a new one per call when
# given non-default separators.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _new_event(
    i: int,
    aggregate_id: str,
    version: int,
    proposed: pb.ProposedEvent,
    now: datetime,
    *,
    codec: PayloadCodec,
) -> NewEvent:
    """The event to store: checked by the domain, personal fields sealed, claims
    as keyed hashes (the store never holds an address in clear)."""
    field = f"events[{i}]"
    if proposed.event_type not in domain.EVENT_TYPES:
        raise invalid(
            f"{field}.event_type",
            f"unknown {proposed.event_type!r}; one of {', '.join(domain.EVENT_TYPES)}",
        )
    try:
        payload = struct_to_dict(proposed.payload)
    except ValueError as exc:
        raise invalid(f"{field}.payload", str(exc)) from None
    # Decoding with the domain rejects a payload that time travel could not fold.
    try:
        domain.event_from_payload(
            proposed.event_type,
            payload,
            aggregate_id=aggregate_id,
            version=version,
            occurred_at=now,
        )
    except domain.ValidationError as exc:
        raise invalid(f"{field}.payload.{exc.field}", exc.reason) from None
    digest = codec.keys.claim_digest
    claims = tuple(Claim(c.namespace, digest(c.namespace, c.value)) for c in proposed.claims)
    releases = tuple(Claim(c.namespace, digest(c.namespace, c.value)) for c in proposed.releases)
    sealed = stamp(
        proposed.event_type, codec.seal_event(proposed.event_type, payload, aggregate_id)
    )
    return NewEvent(
        event_id=proposed.event_id,
        event_type=proposed.event_type,
        payload=_COMPACT_JSON.encode(sealed).encode(),
        claims=claims,
        releases=releases,
    )


def _check_append(request: pb.AppendStreamRequest) -> None:
    """The contract's rules of one AppendStream request (the interceptor sees no single
    request here), its append's fields named as Append names them (``aggregate_id``)."""
    found = request_validation.violations(request)
    if found:
        raise invalid_fields(
            [dataclasses.replace(v, field=v.field.removeprefix("append.")) for v in found]
        )


STREAM_IN_FLIGHT: Final = 1024
"""Unanswered requests one AppendStream may have before the store stops reading it."""


def _checkpoint(position: int) -> pb.SubscribeResponse:
    return pb.SubscribeResponse(
        checkpoint=pb.Checkpoint(position=position, sent_at=to_timestamp(utcnow()))
    )


def _event_types(requested: Any) -> frozenset[str]:
    """The Subscribe filter: known event types only (empty: every type)."""
    wanted = frozenset(requested)
    unknown = sorted(wanted - set(domain.EVENT_TYPES))
    if unknown:
        raise invalid(
            "event_types", f"unknown {unknown[0][:64]!r}; one of {', '.join(domain.EVENT_TYPES)}"
        )
    return wanted


def _events_message(events: list[pb.Event], max_batch: int) -> pb.SubscribeResponse:
    """One event as ``event`` (the default contract), several as ``batch``."""
    if max_batch == 1:
        return pb.SubscribeResponse(event=events[0])
    return pb.SubscribeResponse(batch=pb.EventBatch(events=events))


class EventStoreServicer(pb_grpc.EventStoreServiceServicer):
    """Serves EventStoreService over the engine and time travel."""

    def __init__(self, store: EventStore, time_travel: TimeTravel) -> None:
        self._store = store
        self._tt = time_travel
        self._codec = time_travel.codec
        self._closing = asyncio.Event()

    # -- writes ------------------------------------------------------------

    @errors.unary
    async def Append(self, request: pb.AppendRequest, context: Any) -> pb.AppendResponse:
        correlation, causation = metadata.correlation_ids(context)
        return await self._append(request, correlation, causation, tracing.current_traceparent())

    @errors.streaming
    async def AppendStream(
        self, request_iterator: AsyncIterator[pb.AppendStreamRequest], context: Any
    ) -> AsyncIterator[pb.AppendStreamResponse]:
        """Each request is appended concurrently (the engine batches them like
        separate calls) and answered as soon as its outcome is known.

        Invariants: at most ``STREAM_IN_FLIGHT`` requests of a stream are
        being appended or waiting to be sent (beyond that the stream is not
        read, which pushes back on the client); every request read is
        answered before the stream ends; the stream ends with UNAVAILABLE
        (reconnect) when the store shuts down or the caller's token expires,
        since the token is checked only when the stream opens, and with
        INVALID_ARGUMENT when a message does not parse
        (:mod:`service_kit.malformed_requests`).
        """
        replies: asyncio.Queue[pb.AppendStreamResponse | None] = asyncio.Queue()
        in_flight = asyncio.Semaphore(STREAM_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        stop_reason = ""

        async def answer(request: pb.AppendStreamRequest) -> None:
            started = time.perf_counter()
            correlation, causation = metadata.trace_ids(
                request.correlation_id, request.causation_id
            )
            observability.correlation_id.set(correlation)  # this task's own context
            try:
                _check_append(request)
                # Each append on the stream is a hop of its own request's trace.
                with tracing.continued(
                    TRACED_AS, APPEND_SPAN, request.traceparent, kind=SpanKind.SERVER
                ) as traceparent:
                    appended = await self._append(
                        request.append, correlation, causation, traceparent
                    )
                reply = pb.AppendStreamResponse(request_id=request.request_id, appended=appended)
                code = grpc.StatusCode.OK
            except Exception as exc:
                code, message = errors.reported_status(exc, "AppendStream")
                failed = pb.AppendFailure(code=code.value[0], message=message)
                reply = pb.AppendStreamResponse(request_id=request.request_id, failed=failed)
            observability.observe_rpc(
                SERVICE_NAME, "AppendStream", code.name, time.perf_counter() - started
            )
            replies.put_nowait(reply)

        async def read() -> None:
            broken: Exception | None = None
            try:
                async for request in request_iterator:
                    await in_flight.acquire()
                    task = asyncio.create_task(answer(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            except asyncio.CancelledError:
                if not stop_reason:
                    raise  # the call itself is being cancelled
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()  # the watcher's stop: carry on below
            except Exception as exc:  # a message that does not parse, a broken stream
                broken = exc
            # The client is done writing, or the stream is being ended: answer
            # every request read so far.
            while tasks:
                await asyncio.wait(set(tasks))
            replies.put_nowait(None)
            if broken is not None:
                raise broken  # after the answers: the stream ends with its status

        async def stop_at_expiry_or_shutdown() -> None:
            nonlocal stop_reason
            expires = credentials_expire_at()
            lifetime = None if expires is None else max(0.0, expires - time.time())
            try:
                async with asyncio.timeout(lifetime):
                    await self._closing.wait()
                stop_reason = "the event store is shutting down; reconnect"
            except TimeoutError:
                stop_reason = "the stream's token expired; open a new stream"
            reader.cancel()

        reader = asyncio.create_task(read())
        watcher = asyncio.create_task(stop_at_expiry_or_shutdown())
        try:
            while (reply := await replies.get()) is not None:
                yield reply
                in_flight.release()  # sent: the next request may be read
            await reader  # a failed read ends the call with its error
        finally:
            watcher.cancel()
            reader.cancel()
            for task in tasks:
                task.cancel()  # the client is gone; a queued append may still commit
        if stop_reason:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, stop_reason)

    def close_streams(self) -> None:
        """Ends every AppendStream (each answers what it read, then UNAVAILABLE)."""
        self._closing.set()

    async def _append(
        self, request: pb.AppendRequest, correlation: str, causation: str, traceparent: str
    ) -> pb.AppendResponse:
        aggregate_id = request.aggregate_id
        aggregate_type = request.aggregate_type or "user"
        expected = _expected(request)
        now = utcnow()
        codec = self._codec
        events = [
            _new_event(i, aggregate_id, i + 1, e, now, codec=codec)
            for i, e in enumerate(request.events)
        ]
        result = await self._store.append(
            aggregate_id,
            aggregate_type,
            expected,
            events,
            now=now,
            correlation_id=correlation,
            causation_id=causation,
            traceparent=traceparent,
        )
        if any(e.event_type == domain.UserErased.EVENT_TYPE for e in events):
            # Crypto-shredding, once the erasure is durable (also on an
            # idempotent retry: the first attempt may have died right here).
            codec.erase(aggregate_id, at=domain.format_timestamp(now))
        elif not result.idempotent:
            # The append took the versions right after the stream's old head.
            old_version = result.version - len(events)
            self._tt.after_append(aggregate_id, old_version, result.version, now)
        return pb.AppendResponse(
            aggregate_id=aggregate_id,
            version=result.version,
            positions=list(result.positions),
            idempotent=result.idempotent,
        )

    # -- reads -------------------------------------------------------------

    @errors.unary
    async def LoadAggregate(
        self, request: pb.LoadAggregateRequest, context: Any
    ) -> pb.LoadAggregateResponse:
        aggregate_id = request.aggregate_id
        snap = await self._store.latest_snapshot(aggregate_id)
        usable = snap is not None and snap.schema_version == domain.STATE_SCHEMA_VERSION
        from_version = snap.version + 1 if usable and snap is not None else 1
        version = await self._store.stream_version(aggregate_id)
        records = (
            await self._store.read_stream(aggregate_id, from_version=from_version)
            if from_version <= version
            else []
        )
        response = pb.LoadAggregateResponse(
            aggregate_id=aggregate_id,
            version=version,
            events=[convert.event_to_pb(r, self._codec, redact=False) for r in records],
        )
        if usable and snap is not None:
            opened = snapshot_dict(snap, self._codec)
            response.snapshot_state = json.dumps(opened).encode()
            response.snapshot_version = snap.version
        return response

    @errors.unary
    async def ReadStream(
        self, request: pb.ReadStreamRequest, context: Any
    ) -> pb.ReadStreamResponse:
        aggregate_id = request.aggregate_id
        from_version = request.from_version or 1
        to_version = request.to_version or None
        until = _optional_moment("until", request)
        limit = request.limit or MAX_PAGE
        version = await self._store.stream_version(aggregate_id)
        if version == 0:
            raise errors.ServiceError(grpc.StatusCode.NOT_FOUND, f"stream {aggregate_id} not found")
        records = await self._store.read_stream(
            aggregate_id,
            from_version=from_version,
            to_version=to_version,
            until=until,
            limit=limit,
        )
        return pb.ReadStreamResponse(
            aggregate_id=aggregate_id,
            events=[convert.event_to_pb(r, self._codec) for r in records],
            count=len(records),
            version=version,
        )

    @errors.unary
    async def GetAggregateEvents(
        self, request: pb.GetAggregateEventsRequest, context: Any
    ) -> pb.GetAggregateEventsResponse:
        aggregate_id = request.aggregate_id
        from_version = request.from_version or 1
        if await self._store.stream_version(aggregate_id) == 0:
            raise errors.ServiceError(grpc.StatusCode.NOT_FOUND, f"stream {aggregate_id} not found")
        records = await self._store.read_stream(aggregate_id, from_version=from_version)
        return pb.GetAggregateEventsResponse(
            aggregate_id=aggregate_id,
            events=[convert.event_to_pb(r, self._codec) for r in records],
            count=len(records),
        )

    def _filters(self, request: Any) -> dict[str, Any]:
        event_type = request.event_type
        if event_type and event_type not in domain.EVENT_TYPES:
            raise invalid(
                "event_type", f"unknown {event_type[:64]!r}; one of {', '.join(domain.EVENT_TYPES)}"
            )
        return {
            "event_types": (event_type,) if event_type else (),
            "aggregate_id": request.aggregate_id or None,
            "since": _optional_moment("since", request),
            "until": _optional_moment("until", request),
        }

    @errors.unary
    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Any
    ) -> pb.ListEventsResponse:
        filters = self._filters(request)
        limit = request.limit or DEFAULT_LIST_LIMIT
        after = await self._skip(request.offset, request.after_position, filters)
        records = await self._store.read_all(after_position=after, limit=limit, **filters)
        return pb.ListEventsResponse(
            events=[convert.event_to_pb(r, self._codec) for r in records],
            count=len(records),
            next_after_position=records[-1].position if len(records) == limit else 0,
        )

    async def _skip(self, offset: int, after: int, filters: dict[str, Any]) -> int:
        """The position to read after once ``offset`` matching events past ``after`` are skipped.

        Without filters every position from 1 up is an event (positions are
        gapless), so skipping is arithmetic; with filters the skipped events
        are read, a page at a time, to find where the page starts.
        """
        if not offset:
            return after
        if not any(filters.values()):
            return after + offset
        while offset > 0:
            skipped = await self._store.read_all(
                after_position=after, limit=min(offset, MAX_PAGE), **filters
            )
            if not skipped:
                break
            after = skipped[-1].position
            offset -= len(skipped)
        return after

    @errors.unary
    async def CountEvents(
        self, request: pb.CountEventsRequest, context: Any
    ) -> pb.CountEventsResponse:
        return pb.CountEventsResponse(count=await self._store.count(**self._filters(request)))

    @errors.unary
    async def ReplayEvents(
        self, request: pb.ReplayEventsRequest, context: Any
    ) -> pb.ReplayEventsResponse:
        since = _moment(request.since)
        limit = request.limit or MAX_PAGE
        records = await self._store.read_all(
            after_position=request.after_position, limit=limit, since=since
        )
        return pb.ReplayEventsResponse(
            events=[convert.event_to_pb(r, self._codec) for r in records],
            count=len(records),
            since=request.since,
            next_after_position=records[-1].position if len(records) == limit else 0,
        )

    @errors.streaming
    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Any
    ) -> AsyncIterator[pb.SubscribeResponse]:
        start = request.from_position
        heartbeat = request.heartbeat_seconds or 5
        # include_secrets is the services' alone: the contract's field_access rule.
        redact = not request.include_secrets
        max_batch = request.max_batch or 1
        wanted = _event_types(request.event_types)
        items = self._store.subscribe(start, heartbeat=float(heartbeat))
        async for group in batches(items, max_size=max_batch, read_ahead=max_batch):
            events: list[pb.Event] = []
            skipped = 0  # last position left out by the filter, since the last message
            for item in group:
                if isinstance(item, RecordedEvent):
                    if wanted and item.event_type not in wanted:
                        skipped = item.position
                        continue
                    events.append(convert.event_to_pb(item, self._codec, redact=redact))
                    skipped = 0
                    continue
                if events:  # keep order: events before the checkpoint go first
                    yield _events_message(events, max_batch)
                    events = []
                skipped = 0
                yield _checkpoint(item.position)
            if events:
                yield _events_message(events, max_batch)
            if skipped:
                # A filtered subscriber still learns how far the log was read.
                yield _checkpoint(skipped)

    # -- time travel ---------------------------------------------------------

    @errors.unary
    async def GetState(self, request: pb.GetStateRequest, context: Any) -> pb.GetStateResponse:
        aggregate_id = request.aggregate_id
        folded = await self._tt.current(aggregate_id)
        return pb.GetStateResponse(
            state=convert.state_to_pb(folded.state), events_replayed=folded.events_replayed
        )

    @errors.unary
    async def GetStateAt(
        self, request: pb.GetStateAtRequest, context: Any
    ) -> pb.GetStateAtResponse:
        aggregate_id = request.aggregate_id
        point = request.WhichOneof("point")
        if point == "timestamp":
            folded = await self._tt.at_time(
                aggregate_id, _moment(request.timestamp), asked=to_datetime(request.timestamp)
            )
            return pb.GetStateAtResponse(
                state=convert.state_to_pb(folded.state),
                events_replayed=folded.events_replayed,
                as_of=request.timestamp,
            )
        if point == "version":
            folded = await self._tt.at_version(aggregate_id, request.version)
            return pb.GetStateAtResponse(
                state=convert.state_to_pb(folded.state), events_replayed=folded.events_replayed
            )
        # Unreachable for a checked request (the oneof is required by the contract).
        raise invalid("point", "give exactly one of timestamp, version")

    @errors.unary
    async def GetHistory(
        self, request: pb.GetHistoryRequest, context: Any
    ) -> pb.GetHistoryResponse:
        aggregate_id = request.aggregate_id
        steps = await self._tt.history(aggregate_id)
        return pb.GetHistoryResponse(
            aggregate_id=aggregate_id,
            entries=[
                pb.HistoryEntry(
                    event=convert.event_to_pb(s.record, self._codec),
                    state=convert.state_to_pb(s.state),
                    changed_fields=list(s.changed_fields),
                )
                for s in steps
            ],
            count=len(steps),
        )

    @errors.unary
    async def CompareStates(
        self, request: pb.CompareStatesRequest, context: Any
    ) -> pb.CompareStatesResponse:
        aggregate_id = request.aggregate_id
        t1 = _moment(request.time1)
        t2 = _moment(request.time2)
        s1 = await self._tt.state_or_none(aggregate_id, t1)
        s2 = await self._tt.state_or_none(aggregate_id, t2)
        changes = domain.diff_states(s1, s2)
        response = pb.CompareStatesResponse(
            aggregate_id=aggregate_id,
            changes=[
                pb.FieldChange(field=c.field, before=c.before, after=c.after) for c in changes
            ],
            change_count=len(changes),
        )
        if s1 is not None:
            response.state1.CopyFrom(convert.state_to_pb(s1))
        if s2 is not None:
            response.state2.CopyFrom(convert.state_to_pb(s2))
        return response

    @errors.unary
    async def ListStatesAt(
        self, request: pb.ListStatesAtRequest, context: Any
    ) -> pb.ListStatesAtResponse:
        at = _moment(request.timestamp)
        size = request.page_size or DEFAULT_LIST_LIMIT
        states, next_token = await self._tt.states_at(
            at, page_size=size, after_id=request.page_token
        )
        return pb.ListStatesAtResponse(
            states=[convert.state_to_pb(s) for s in states],
            count=len(states),
            next_page_token=next_token,
            as_of=request.timestamp,
        )

    # -- snapshots -----------------------------------------------------------

    def _snapshot_pb(self, record: SnapshotRecord) -> pb.Snapshot:
        state = snapshot_state(record, self._codec)
        assert state is not None
        return pb.Snapshot(
            aggregate_id=record.aggregate_id,
            version=record.version,
            created_at=to_timestamp(record.created_at),
            schema_version=record.schema_version,
            state=convert.state_to_pb(state),
        )

    @errors.unary
    async def CreateSnapshot(
        self, request: pb.CreateSnapshotRequest, context: Any
    ) -> pb.CreateSnapshotResponse:
        aggregate_id = request.aggregate_id
        record = await self._tt.create_snapshot(aggregate_id, utcnow())
        return pb.CreateSnapshotResponse(
            snapshot=self._snapshot_pb(record),
            message=f"snapshot of {aggregate_id} stored at version {record.version}",
        )

    @errors.unary
    async def GetSnapshot(
        self, request: pb.GetSnapshotRequest, context: Any
    ) -> pb.GetSnapshotResponse:
        aggregate_id = request.aggregate_id
        return pb.GetSnapshotResponse(
            snapshot=self._snapshot_pb(await self._tt.latest_snapshot(aggregate_id))
        )

    @errors.unary
    async def GetStateFromSnapshot(
        self, request: pb.GetStateFromSnapshotRequest, context: Any
    ) -> pb.GetStateFromSnapshotResponse:
        aggregate_id = request.aggregate_id
        folded = await self._tt.from_snapshot(aggregate_id)
        return pb.GetStateFromSnapshotResponse(
            state=convert.state_to_pb(folded.state),
            snapshot_version=folded.snapshot_version,
            events_replayed=folded.events_replayed,
            snapshot_used=folded.snapshot_version > 0,
        )
