"""Scenario 3: ChangeEmail end to end through command_svc's gRPC API.

store_svc and command_svc run as separate processes; each of 64 clients
owns one registered user and changes its email back to back with that
user's own token, so every call pays the whole command path: auth, load
(snapshot + tail), decide, append (claims taken and released), reply.
Target: at least 0.3 x the echo ceiling, measured in windows alternating
with these (see scenario 1).

query_svc is not running here: this is the command side's maximum rate,
the figure scenario 4 halves.
"""

from __future__ import annotations

import grpc
from cqrs.command.v1 import command_pb2 as cpb
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc

from bench.context import RunContext
from bench.measure import CONCURRENCY, RateResult, closed_loop
from bench.report import Row, Target
from bench.scenarios.ceiling import echo_server, paired_rounds
from bench.stack import running_stack
from bench.users import BenchUser, register_users

__all__ = ["change_email_rate", "run"]

_CALL_TIMEOUT = 30.0
TARGET = Target(">=", 0.3, text=">= 0.30 x ceiling")


async def change_email_rate(
    stub: cpb_grpc.CommandServiceAsyncStub, users: list[BenchUser], *, seconds: float, warmup: float
) -> RateResult:
    async def change(w: int, i: int) -> object:
        user = users[w]
        return await stub.ChangeEmail(
            cpb.ChangeEmailRequest(id=user.user_id, new_email=user.next_email()),
            metadata=user.metadata,
            timeout=_CALL_TIMEOUT,
        )

    return await closed_loop(change, workers=len(users), seconds=seconds, warmup=warmup)


async def run(ctx: RunContext) -> list[Row]:
    budget = ctx.budget
    async with (
        running_stack(
            ctx.stack, command=True, profiler=ctx.profiler, label="s3-change-email"
        ) as stack,
        grpc.aio.insecure_channel(stack.command_target) as channel,
        echo_server() as echo,
    ):
        stub = cpb_grpc.CommandServiceStub(channel)
        users = await register_users(stub, ctx.tokens, CONCURRENCY)
        paired = await paired_rounds(
            budget.rounds,
            lambda: echo.rate(seconds=budget.seconds, warmup=budget.warmup),
            lambda: change_email_rate(stub, users, seconds=budget.seconds, warmup=budget.warmup),
        )
    ctx.change_email_per_s = paired.subject_per_s
    return [
        Row(
            3,
            ctx.stack.name,
            f"ChangeEmail via command_svc, {CONCURRENCY} users",
            paired.subject_per_s,
            "commands/s",
            ratio=paired.ratio,
            ratio_to="ceiling",
            target=TARGET,
            details=paired.details(),
        )
    ]
