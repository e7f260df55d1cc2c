"""Scenario 5: time travel on a 1,000-event stream, without and with a snapshot.

store_svc runs alone with automatic snapshots off (SNAPSHOT_EVERY=0), so the
first series replays all 1,000 events; then one snapshot is taken
(CreateSnapshot) and the second series starts from it. Calls are sequential
(latency, not throughput) and each answer is checked to be at version 1,000.
Targets: p50 <= 10 ms without, <= 3 ms with the snapshot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from bench.context import RunContext
from bench.measure import Latencies
from bench.report import Row, Target
from bench.stack import running_stack
from bench.tokens import Metadata
from bench.workload import user_history_appends
from service_kit.timeconv import to_timestamp

__all__ = ["STREAM_LENGTH", "run", "state_at_latencies"]

STREAM_LENGTH = 1000
_CALL_TIMEOUT = 30.0
_WARM_CALLS = 5
TARGET_PLAIN = Target("<=", 10.0, on_figure=True, text="p50 <= 10 ms")
TARGET_SNAPSHOT = Target("<=", 3.0, on_figure=True, text="p50 <= 3 ms")


async def _state_at(
    stub: pb_grpc.EventStoreServiceAsyncStub, md: Metadata, user_id: str, calls: int
) -> list[float]:
    at = to_timestamp(datetime.now(UTC))
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        reply = await stub.GetStateAt(
            pb.GetStateAtRequest(aggregate_id=user_id, timestamp=at),
            metadata=md,
            timeout=_CALL_TIMEOUT,
        )
        out.append(time.perf_counter() - started)
        if reply.state.version != STREAM_LENGTH:
            raise AssertionError(f"state at version {reply.state.version}, not {STREAM_LENGTH}")
    return out


async def state_at_latencies(
    stub: pb_grpc.EventStoreServiceAsyncStub, md: Metadata, *, calls: int
) -> tuple[Latencies, Latencies]:
    """GetStateAt latencies on a fresh 1,000-event stream: (no snapshot, via snapshot)."""
    user_id = str(uuid.uuid4())
    for request in user_history_appends(user_id, STREAM_LENGTH, chunk=100):
        await stub.Append(request, metadata=md, timeout=_CALL_TIMEOUT)
    await asyncio.sleep(0.01)  # the point in time is strictly after the last event
    await _state_at(stub, md, user_id, _WARM_CALLS)
    plain = await _state_at(stub, md, user_id, calls)
    await stub.CreateSnapshot(
        pb.CreateSnapshotRequest(aggregate_id=user_id), metadata=md, timeout=_CALL_TIMEOUT
    )
    await _state_at(stub, md, user_id, _WARM_CALLS)
    snap = await _state_at(stub, md, user_id, calls)
    return Latencies.of(plain), Latencies.of(snap)


async def run(ctx: RunContext) -> list[Row]:
    async with (
        running_stack(
            ctx.stack,
            extra_env={"SNAPSHOT_EVERY": "0"},
            profiler=ctx.profiler,
            label="s5-time-travel",
        ) as stack,
        grpc.aio.insecure_channel(stack.store_target) as channel,
    ):
        plain, snap = await state_at_latencies(
            pb_grpc.EventStoreServiceStub(channel),
            ctx.tokens.service(),
            calls=ctx.budget.time_travel_calls,
        )
    name = ctx.stack.name
    what = f"GetStateAt, {STREAM_LENGTH}-event stream"
    return [
        Row(
            5,
            name,
            f"{what}, p50",
            plain.p50_ms,
            "ms",
            target=TARGET_PLAIN,
            details={"latency": plain},
        ),
        Row(5, name, f"{what}, p99", plain.p99_ms, "ms", details={"latency": plain}),
        Row(
            5,
            name,
            f"{what} + snapshot, p50",
            snap.p50_ms,
            "ms",
            target=TARGET_SNAPSHOT,
            details={"latency": snap},
        ),
        Row(5, name, f"{what} + snapshot, p99", snap.p99_ms, "ms", details={"latency": snap}),
    ]
