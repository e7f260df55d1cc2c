"""Scenario 2: single-event Appends via gRPC, 64 concurrent clients on distinct streams.

store_svc runs in its own process with its deployed defaults (auth on, group
commit, automatic snapshots); each client appends one ``user.login.recorded``
at its stream's exact version, as command_svc does. Target: at least half of
the echo ceiling, measured in windows alternating with these (see scenario 1).
"""

from __future__ import annotations

import uuid

import grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from bench.context import RunContext
from bench.measure import CONCURRENCY, RateResult, closed_loop
from bench.report import Row, Target
from bench.scenarios.ceiling import echo_server, paired_rounds
from bench.stack import running_stack
from bench.tokens import Metadata
from bench.workload import created_append, login_append

__all__ = ["append_rate", "run"]

_CALL_TIMEOUT = 30.0
TARGET = Target(">=", 0.5, text=">= 0.50 x ceiling")


async def append_rate(
    stub: pb_grpc.EventStoreServiceAsyncStub, md: Metadata, *, seconds: float, warmup: float
) -> RateResult:
    """Single-event appends/s, CONCURRENCY clients each on its own new stream."""
    streams = [str(uuid.uuid4()) for _ in range(CONCURRENCY)]
    versions = [0] * CONCURRENCY
    for w, stream in enumerate(streams):
        versions[w] = (
            await stub.Append(created_append(stream), metadata=md, timeout=_CALL_TIMEOUT)
        ).version

    async def append(w: int, i: int) -> object:
        result = await stub.Append(
            login_append(streams[w], versions[w]), metadata=md, timeout=_CALL_TIMEOUT
        )
        versions[w] = result.version
        return result

    return await closed_loop(append, seconds=seconds, warmup=warmup)


async def run(ctx: RunContext) -> list[Row]:
    budget = ctx.budget
    async with (
        running_stack(ctx.stack, profiler=ctx.profiler, label="s2-appends") as stack,
        grpc.aio.insecure_channel(stack.store_target) as channel,
        echo_server() as echo,
    ):
        stub = pb_grpc.EventStoreServiceStub(channel)
        md = ctx.tokens.service()
        paired = await paired_rounds(
            budget.rounds,
            lambda: echo.rate(seconds=budget.seconds, warmup=budget.warmup),
            lambda: append_rate(stub, md, seconds=budget.seconds, warmup=budget.warmup),
        )
    return [
        Row(
            2,
            ctx.stack.name,
            f"store Append, 1 event, {CONCURRENCY} streams",
            paired.subject_per_s,
            "appends/s",
            ratio=paired.ratio,
            ratio_to="ceiling",
            target=TARGET,
            details=paired.details(),
        )
    ]
