"""Scenario 6: rebuilding the read model from 100,000 events, in events per second.

The store (own process) is first loaded through Append with 4,000 users of
25 events each (registration, logins, email and password changes: the
domain's real events and claims). Then query_svc starts, its projector
catches up from position 0 (timed, reported as a detail), and an admin
calls ``RebuildReadModel``: fresh tables filled from position 0 and swapped
in. Figure = events / wall time of that call, as the client sees it.
Target (production stack, PostgreSQL): >= 20,000 events/s; the embedded
stack's SQLite figure is reported without a target.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from cqrs.query.v1 import query_pb2 as qpb
from cqrs.query.v1 import query_pb2_grpc as qpb_grpc

from bench.context import RunContext
from bench.report import Row, Target
from bench.stack import PRODUCTION, RunningStack, running_stack
from bench.tokens import Metadata
from bench.workload import user_history_appends

__all__ = ["load_store", "run"]

EVENTS_PER_USER = 25
_LOADERS = 16
_CALL_TIMEOUT = 60.0
_CATCH_UP_WITHIN = 900.0
_REBUILD_TIMEOUT = 1800.0
TARGET = Target(">=", 20_000.0, on_figure=True, text=">= 20,000 events/s")


async def load_store(stub: pb_grpc.EventStoreServiceAsyncStub, md: Metadata, *, events: int) -> int:
    """Appends ``events`` events (users of EVENTS_PER_USER); returns the head position."""
    users = max(1, events // EVENTS_PER_USER)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(users):
        queue.put_nowait(str(uuid.uuid4()))
    head = 0

    async def loader() -> None:
        nonlocal head
        while not queue.empty():
            user_id = queue.get_nowait()
            for request in user_history_appends(user_id, EVENTS_PER_USER, chunk=EVENTS_PER_USER):
                reply = await stub.Append(request, metadata=md, timeout=_CALL_TIMEOUT)
                head = max(head, *reply.positions)

    await asyncio.gather(*(loader() for _ in range(_LOADERS)))
    return head


async def _caught_up(stub: qpb_grpc.QueryServiceAsyncStub, md: Metadata, head: int) -> None:
    deadline = time.monotonic() + _CATCH_UP_WITHIN
    while True:
        try:
            await stub.ListUsers(
                qpb.ListUsersRequest(page_size=1, min_position=head),
                metadata=md,
                timeout=_CALL_TIMEOUT,
            )
            return
        except grpc.aio.AioRpcError as exc:
            # UNAVAILABLE "min_position: ...": query_svc's own wait (5 s) ran
            # out before the projector got there; ask again until our deadline.
            behind = exc.code() == grpc.StatusCode.UNAVAILABLE and (exc.details() or "").startswith(
                "min_position"
            )
            if not behind or time.monotonic() > deadline:
                raise


async def _rebuild(stub: qpb_grpc.QueryServiceAsyncStub, md: Metadata) -> tuple[int, float, float]:
    """Runs one rebuild; (events, seconds, rate the server reported)."""
    started = time.perf_counter()
    stream = stub.RebuildReadModel(
        qpb.RebuildReadModelRequest(), metadata=md, timeout=_REBUILD_TIMEOUT
    )
    async for progress in stream:
        if progress.finished:
            return int(progress.total), time.perf_counter() - started, float(progress.rate)
    raise AssertionError("RebuildReadModel ended before it finished")


async def _measure(stack: RunningStack, ctx: RunContext) -> dict[str, float]:
    service, admin = ctx.tokens.service(), ctx.tokens.admin()
    async with grpc.aio.insecure_channel(stack.store_target) as store_channel:
        load_started = time.perf_counter()
        head = await load_store(
            pb_grpc.EventStoreServiceStub(store_channel), service, events=ctx.budget.rebuild_events
        )
        load_seconds = time.perf_counter() - load_started
    catch_up_started = time.perf_counter()
    await stack.start_query()
    async with grpc.aio.insecure_channel(stack.query_target) as channel:
        stub = qpb_grpc.QueryServiceStub(channel)
        await _caught_up(stub, admin, head)
        catch_up_seconds = time.perf_counter() - catch_up_started
        events, seconds, server_rate = await _rebuild(stub, admin)
    return {
        "events": events,
        "rebuild_seconds": seconds,
        "events_per_s": events / seconds,
        "server_reported_rate": server_rate,
        "store_head": head,
        "load_seconds": load_seconds,
        "catch_up_including_start_seconds": catch_up_seconds,
        "catch_up_events_per_s": head / catch_up_seconds,
    }


async def run(ctx: RunContext) -> list[Row]:
    async with running_stack(ctx.stack, profiler=ctx.profiler, label="s6-rebuild") as stack:
        figures = await _measure(stack, ctx)
    production = ctx.stack.name == PRODUCTION
    into = "PostgreSQL" if production else "SQLite"
    return [
        Row(
            6,
            ctx.stack.name,
            f"rebuild read model ({into}) from {figures['events']:,.0f} events",
            figures["events_per_s"],
            "events/s",
            target=TARGET if production else None,
            details=figures,
        )
    ]
