"""Scenario 4: projection lag, from a command's acknowledgement to its visibility in reads.

store_svc, command_svc and query_svc run as separate processes. ChangeEmail
commands are *offered* at half of scenario 3's maximum rate (open loop, a
fixed schedule, 64 users taking turns); after each acknowledgement the
client asks query_svc for that user at the command's position
(``GetUser(min_position=...)``), which answers as soon as the projector has
applied it. Lag = answer time - acknowledgement time (includes one query
round trip, under 1 ms on loopback), checked to show the new email.
Target: p99 <= 250 ms.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from cqrs.command.v1 import command_pb2 as cpb
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc
from cqrs.query.v1 import query_pb2 as qpb
from cqrs.query.v1 import query_pb2_grpc as qpb_grpc

from bench.context import RunContext
from bench.measure import CONCURRENCY, Latencies
from bench.report import Row, Target
from bench.stack import running_stack
from bench.users import BenchUser, register_users, wait_projected

__all__ = ["offer", "run"]

_CALL_TIMEOUT = 30.0
TARGET = Target("<=", 250.0, on_figure=True, text="p99 <= 250 ms")


class _Offered:
    """Lags of the commands issued inside the measuring window, and the schedule's slips."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.not_visible = 0  # the read did not see the change within query_svc's wait
        self.waited_for_user = 0  # every user busy at a tick: the system fell behind


async def offer(
    cstub: cpb_grpc.CommandServiceAsyncStub,
    qstub: qpb_grpc.QueryServiceAsyncStub,
    users: list[BenchUser],
    *,
    rate: float,
    seconds: float,
    warmup: float,
) -> tuple[_Offered, float]:
    """Issues commands at ``rate``/s for ``warmup + seconds``; the window's lags and
    the rate actually offered inside it."""
    free: asyncio.Queue[BenchUser] = asyncio.Queue()
    for user in users:
        free.put_nowait(user)
    out = _Offered()
    tasks: set[asyncio.Task[None]] = set()

    async def one(user: BenchUser, measured: bool) -> None:
        try:
            reply = await cstub.ChangeEmail(
                cpb.ChangeEmailRequest(id=user.user_id, new_email=user.next_email()),
                metadata=user.metadata,
                timeout=_CALL_TIMEOUT,
            )
            acked = time.perf_counter()
            try:
                got = await qstub.GetUser(
                    qpb.GetUserRequest(id=user.user_id, min_position=reply.position),
                    metadata=user.metadata,
                    timeout=_CALL_TIMEOUT,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION and exc.code() != (
                    grpc.StatusCode.UNAVAILABLE
                ):
                    raise
                if measured:
                    out.not_visible += 1
                    out.lags.append(time.perf_counter() - acked)
                return
            lag = time.perf_counter() - acked
            if got.user.email != reply.email:
                raise AssertionError(f"read {got.user.email!r} after acking {reply.email!r}")
            if measured:
                out.lags.append(lag)
        finally:
            free.put_nowait(user)

    interval = 1.0 / rate
    start = time.perf_counter()
    window_start = start + warmup
    end = window_start + seconds
    issued_in_window = 0
    tick = 0
    while True:
        due = start + tick * interval
        if due >= end:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if free.empty():
            out.waited_for_user += 1
        user = await free.get()
        measured = due >= window_start
        issued_in_window += measured
        task = asyncio.create_task(one(user, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        tick += 1
    if tasks:
        await asyncio.gather(*tasks)
    return out, issued_in_window / seconds


async def run(ctx: RunContext) -> list[Row]:
    if ctx.change_email_per_s is None:
        raise RuntimeError("needs the rate of scenario 3, which did not run or failed")
    rate = ctx.change_email_per_s / 2
    async with (
        running_stack(
            ctx.stack, command=True, query=True, profiler=ctx.profiler, label="s4-projection-lag"
        ) as stack,
        grpc.aio.insecure_channel(stack.command_target) as cchannel,
        grpc.aio.insecure_channel(stack.query_target) as qchannel,
    ):
        cstub = cpb_grpc.CommandServiceStub(cchannel)
        qstub = qpb_grpc.QueryServiceStub(qchannel)
        users = await register_users(cstub, ctx.tokens, CONCURRENCY)
        await wait_projected(qstub, users)
        offered, offered_rate = await offer(
            cstub,
            qstub,
            users,
            rate=rate,
            seconds=ctx.budget.seconds,
            warmup=ctx.budget.warmup,
        )
    lags = Latencies.of(offered.lags)
    details = {
        "target_rate_per_s": rate,
        "offered_rate_per_s": offered_rate,
        "lag": lags,
        "not_visible_within_query_wait": offered.not_visible,
        "ticks_waiting_for_a_free_user": offered.waited_for_user,
        "event_source": ctx.stack.event_source,
    }
    what = f"projection lag at {rate:,.0f} ChangeEmail/s"
    return [
        Row(4, ctx.stack.name, f"{what}, p50", lags.p50_ms, "ms", details=details),
        Row(4, ctx.stack.name, f"{what}, p99", lags.p99_ms, "ms", target=TARGET, details=details),
    ]
