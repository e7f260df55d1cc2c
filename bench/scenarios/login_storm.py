"""Scenario 7: a login storm against bcrypt's own limit, and a cheap query during it.

The limit is measured in the same run, in the bench process: as many
threads as cores verifying one password at the services' bcrypt cost with
the services' own pre-hash and thread pool (``service_kit.passwords``) —
the most logins/s these cores could ever serve. Then 16 clients (each its
own registered user) log in back to back through query_svc (bcrypt verify,
token, and RecordLogin through command_svc into the store, as deployed),
while one probe asks query_svc for a user (``GetUser``) every 20 ms.
Limit and storm windows alternate (rounds); the ratio is the median of the
rounds' ratios. Targets: logins/s >= 0.8 x the limit; probe p99 <= 100 ms.
"""

from __future__ import annotations

import asyncio
import os
import time

import grpc
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc
from cqrs.query.v1 import query_pb2 as qpb
from cqrs.query.v1 import query_pb2_grpc as qpb_grpc

from bench.context import RunContext
from bench.measure import Latencies, RateResult, closed_loop
from bench.report import Row, Target
from bench.scenarios.ceiling import paired_rounds
from bench.stack import running_stack
from bench.users import BenchUser, register_users, wait_projected
from bench.workload import PASSWORD
from service_kit.passwords import PasswordHasher

__all__ = ["bcrypt_limit", "run"]

STORM_CLIENTS = 16
_PROBE_INTERVAL = 0.02
_CALL_TIMEOUT = 120.0
TARGET_RATE = Target(">=", 0.8, text=">= 0.80 x bcrypt limit")
TARGET_PROBE = Target("<=", 100.0, on_figure=True, text="p99 <= 100 ms")


async def bcrypt_limit(*, cost: int, seconds: float, warmup: float) -> RateResult:
    """Verifications/s with one thread per core, pre-hash included (the physical limit)."""
    cores = os.cpu_count() or 1
    hasher = PasswordHasher(cost, max_workers=cores)
    try:
        hashed = await hasher.hash(PASSWORD)

        async def verify(w: int, i: int) -> object:
            if not await hasher.verify(PASSWORD, hashed):
                raise AssertionError("bcrypt verification failed")
            return None

        return await closed_loop(verify, workers=cores, seconds=seconds, warmup=warmup)
    finally:
        hasher.close()


async def _storm(
    stub: qpb_grpc.QueryServiceAsyncStub,
    users: list[BenchUser],
    probes: list[float],
    *,
    seconds: float,
    warmup: float,
) -> RateResult:
    """Logins/s of the storm; appends each probe's latency (seconds) to ``probes``."""
    probe_user = users[0]
    stop = asyncio.Event()

    async def login(w: int, i: int) -> object:
        user = users[w]
        return await stub.Login(
            qpb.LoginRequest(email=user.email, password=PASSWORD), timeout=_CALL_TIMEOUT
        )

    async def probe() -> None:
        await asyncio.sleep(warmup)  # only probes inside the storm's measuring window
        while not stop.is_set():
            started = time.perf_counter()
            await stub.GetUser(
                qpb.GetUserRequest(id=probe_user.user_id),
                metadata=probe_user.metadata,
                timeout=_CALL_TIMEOUT,
            )
            probes.append(time.perf_counter() - started)
            await asyncio.sleep(_PROBE_INTERVAL)

    prober = asyncio.create_task(probe())
    try:
        rate = await closed_loop(login, workers=len(users), seconds=seconds, warmup=warmup)
    finally:
        stop.set()
        await prober
    return rate


async def run(ctx: RunContext) -> list[Row]:
    budget = ctx.budget
    probes: list[float] = []
    async with (
        running_stack(
            ctx.stack,
            command=True,
            query=True,
            bcrypt_cost=ctx.bcrypt_cost,
            profiler=ctx.profiler,
            label="s7-login-storm",
        ) as stack,
        grpc.aio.insecure_channel(stack.command_target) as cchannel,
        grpc.aio.insecure_channel(stack.query_target) as qchannel,
    ):
        qstub = qpb_grpc.QueryServiceStub(qchannel)
        users = await register_users(
            cpb_grpc.CommandServiceStub(cchannel), ctx.tokens, STORM_CLIENTS
        )
        await wait_projected(qstub, users)
        paired = await paired_rounds(
            budget.rounds,
            lambda: bcrypt_limit(
                cost=ctx.bcrypt_cost, seconds=budget.seconds, warmup=budget.warmup
            ),
            lambda: _storm(qstub, users, probes, seconds=budget.seconds, warmup=budget.warmup),
        )
    probe = Latencies.of(probes)
    details = {
        "bcrypt_cost": ctx.bcrypt_cost,
        "cores": os.cpu_count(),
        **paired.details(),
        "probe_latency": probe,
    }
    name = ctx.stack.name
    return [
        Row(
            7,
            name,
            f"login storm, {STORM_CLIENTS} clients, bcrypt cost {ctx.bcrypt_cost}",
            paired.subject_per_s,
            "logins/s",
            ratio=paired.ratio,
            ratio_to="bcrypt limit",
            target=TARGET_RATE,
            details=details,
        ),
        Row(
            7,
            name,
            "GetUser during the storm, p99",
            probe.p99_ms,
            "ms",
            target=TARGET_PROBE,
            details=details,
        ),
    ]
