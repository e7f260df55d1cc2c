"""Scenario 1: the ceiling, a bare grpcio.aio echo server and client.

The echo server runs in its own process (as a service would, competing for
the same cores) and answers each request with its bytes; the request is a
serialized single-event Append, the size scenario 2 sends. Same client
concurrency as scenarios 2 and 3. Those scenarios keep an echo server of
their own running beside the services and alternate echo windows with
their own windows (``paired_rounds``), so each of their ratios compares two
figures taken seconds apart on this shared, noisy machine.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.context import RunContext
from bench.echo_server import ECHO_METHOD
from bench.measure import CONCURRENCY, RateResult, closed_loop
from bench.processes import ServiceProcess, child_env, free_port
from bench.report import Row
from bench.workload import login_append

__all__ = ["EchoClient", "Paired", "echo_server", "paired_rounds", "run"]

_CALL_TIMEOUT = 10.0


@dataclass(slots=True)
class EchoClient:
    """Closed-loop load on a running echo server."""

    channel: grpc.aio.Channel

    async def rate(self, *, seconds: float, warmup: float) -> RateResult:
        payload = login_append(str(uuid.uuid4()), 1).SerializeToString()
        echo = self.channel.unary_unary(
            ECHO_METHOD, request_serializer=None, response_deserializer=None
        )

        async def call(w: int, i: int) -> object:
            return await echo(payload, timeout=_CALL_TIMEOUT)

        return await closed_loop(call, seconds=seconds, warmup=warmup)


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[EchoClient]:
    """An echo server in its own process for the life of the block."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-echo-") as folder:
        server = ServiceProcess(
            "bench.echo_server", env=child_env({}), log_dir=Path(folder), args=(str(port),)
        )
        await server.start(target)
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                yield EchoClient(channel)
        finally:
            await server.stop()


async def echo_rate(*, seconds: float, warmup: float) -> RateResult:
    """Calls/s of a fresh echo server under CONCURRENCY closed-loop clients."""
    async with echo_server() as echo:
        return await echo.rate(seconds=seconds, warmup=warmup)


@dataclass(frozen=True, slots=True)
class Paired:
    """Rounds of (reference, subject) rates; the figure and ratio are medians over rounds."""

    references: list[RateResult]
    subjects: list[RateResult]

    @property
    def subject_per_s(self) -> float:
        return statistics.median(r.per_second for r in self.subjects)

    @property
    def reference_per_s(self) -> float:
        return statistics.median(r.per_second for r in self.references)

    @property
    def ratio(self) -> float:
        return statistics.median(
            s.per_second / r.per_second for s, r in zip(self.subjects, self.references, strict=True)
        )

    def details(self) -> dict[str, object]:
        return {
            "rounds": len(self.subjects),
            "reference_per_s": [r.per_second for r in self.references],
            "subject_per_s": [s.per_second for s in self.subjects],
            "subject_latency_last_round": self.subjects[-1].latencies,
        }


async def paired_rounds(
    rounds: int,
    reference: Callable[[], Awaitable[RateResult]],
    subject: Callable[[], Awaitable[RateResult]],
) -> Paired:
    """Alternates a reference window and a subject window ``rounds`` times."""
    references, subjects = [], []
    for _ in range(rounds):
        references.append(await reference())
        subjects.append(await subject())
    return Paired(references, subjects)


async def run(ctx: RunContext) -> list[Row]:
    budget = ctx.budget
    async with echo_server() as echo:
        results = [
            await echo.rate(seconds=budget.seconds, warmup=budget.warmup)
            for _ in range(budget.rounds)
        ]
    rates = [r.per_second for r in results]
    return [
        Row(
            1,
            ctx.stack.name,
            f"echo ceiling, {CONCURRENCY} clients",
            statistics.median(rates),
            "calls/s",
            details={"rounds_per_s": rates, "latency_last_round": results[-1].latencies},
        )
    ]
