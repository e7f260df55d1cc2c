"""Dependencies down or hung under load: honest, bounded answers and health that tells.

The production stack (store on ClickHouse relaying to Kafka, query_svc on
PostgreSQL fed by Kafka, command_svc, the gateway) under a gRPC command load
and HTTP traffic through the gateway (a reader polling a user every 50 ms,
clients logging in, /health/ready every 0.5 s), while a real server is
crashed and restarted, paused with SIGSTOP for 20 s, or stopped. Every
answer is recorded with its duration; afterwards nothing acknowledged is
lost or doubled and the read model equals the store's fold.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.command.v1 import command_pb2_grpc as cmd_grpc
from cqrs.query.v1 import query_pb2 as q

from service_kit.auth import ROLE_SERVICE
from tests.auth_support import SERVICE, token
from tests.integration.faults import http
from tests.integration.faults.conftest import COMMAND_BOUND, Stack
from tests.integration.faults.http import Answer, Traffic
from tests.integration.faults.support import PASSWORD, Load, infra, infra_manages
from tests.integration.kafka.support import wait_until

pytestmark = pytest.mark.integration

READ_BOUND = 2.0  # QUERY_DB_READ_TIMEOUT_MS's default
LOGIN_BOUND = 10.0  # QUERY_LOGIN_TIMEOUT_MS's default
SLACK = 1.0  # scheduling on a shared 2-core machine
SERVER_ERRORS = {0, 500, 502, 504}  # no answer, internal, bad gateway, gateway deadline


def needs_infra(component: str) -> None:
    if not infra_manages(component):
        pytest.skip(f"{component} is not run by scripts/infra.sh here: not touching it")


async def acked(load: Load, count: int, *, since: float = 0.0, within: float = 30.0) -> None:
    await wait_until(
        lambda: load.acked_since(since) >= count,
        within=within,
        what=f"{count} acknowledged commands (failures: {load.failures[-3:]})",
    )


async def registered_users(stack: Stack, count: int) -> list[tuple[str, str]]:
    """(id, email) of users registered through command_svc, once the read model has them."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.command.port}") as channel:
        stub = cmd_grpc.CommandServiceStub(channel)
        users = []
        for _ in range(count):
            email = f"probe-{uuid.uuid4().hex[:10]}@example.com"
            reply = await stub.Register(
                cmd.RegisterRequest(email=email, password=PASSWORD), metadata=SERVICE, timeout=10
            )
            users.append((reply.id, email))
    last = users[-1][0]
    queries = stack.queries
    await queries.GetUser(
        q.GetUserRequest(id=last, min_position=reply.position), metadata=SERVICE, timeout=10
    )
    return users


@asynccontextmanager
async def traffic_and_load(stack: Stack) -> AsyncIterator[tuple[Traffic, Load]]:
    """HTTP traffic and a command load, both running inside the block; the traffic's
    users are in ``traffic.users`` (for ``stack.verify(load, others=...)``)."""
    users = await registered_users(stack, 3)
    traffic = Traffic(
        port=stack.gateway.port,
        read_path=f"/users/{users[0][0]}",
        token=token("fault-tests", ROLE_SERVICE),
        logins=[(email, PASSWORD) for _, email in users[1:]],
        users=[user_id for user_id, _ in users],
    )
    load = stack.load()
    load.timeout = COMMAND_BOUND + 3  # the service's own bound must answer first
    traffic.start()
    load.start(max_seconds=150)
    try:
        yield traffic, load
    finally:
        await load.stop()
        await traffic.stop()


def backend_check(answer: Answer, backend: str, check: str) -> str:
    body = answer.json() or {}
    checks = (body.get("backends", {}).get(backend) or {}).get("checks", {})
    return str((checks.get(check) or {}).get("status", ""))


async def health_until(
    traffic: Traffic, predicate: Callable[[Answer], bool], *, since: float, within: float
) -> Answer:
    """The first /health/ready answer after ``since`` that satisfies ``predicate``."""
    await wait_until(
        lambda: traffic.first("health", predicate, since=since) is not None,
        within=within,
        what=f"health (latest: {traffic.of('health')[-1:]})",
    )
    answer = traffic.first("health", predicate, since=since)
    assert answer is not None
    return answer


def assert_honest_and_bounded(traffic: Traffic, load: Load, *, since: float) -> None:
    """No 500, 502, 504 or unanswered request at any moment; every read, login and
    command answered (success or 503/UNAVAILABLE) within its bound."""
    server_errors = [a for a in traffic.answers if a.status in SERVER_ERRORS]
    assert server_errors == [], server_errors[:5]
    for kind, bound, ok in (("read", READ_BOUND, 200), ("login", LOGIN_BOUND, 200)):
        answers = traffic.of(kind, since=since)
        assert answers, f"no {kind} during the fault"
        odd = [a for a in answers if a.status not in (ok, 503)]
        assert odd == [], odd[:5]
        slow = [a for a in answers if a.seconds > bound + SLACK]
        assert slow == [], slow[:5]
    calls = load.calls_since(since)
    assert calls, "no command during the fault"
    assert {code for _, _, code in calls} <= {"OK", "UNAVAILABLE"}, load.failures[-5:]
    slowest = max(seconds for _, seconds, _ in calls)
    assert slowest <= COMMAND_BOUND + SLACK, f"a command took {slowest:.2f}s"


# -- PostgreSQL crashed and restarted ---------------------------------------------------


async def test_postgres_crash_and_restart_reads_503_never_500(stack: Stack) -> None:
    needs_infra("postgres")
    async with traffic_and_load(stack) as (traffic, load):
        await acked(load, 20)
        crashed = time.monotonic()
        try:
            await infra("crash", "postgres")  # pg_ctl stop -m immediate: recovery at start
            await wait_until(
                lambda: traffic.first("read", lambda a: a.status == 503, since=crashed),
                within=10,
                what="a read answered 503",
            )
            await asyncio.sleep(3)
        finally:
            await infra("start", "postgres")  # the traffic goes on through its start-up
        restarted = time.monotonic()
        await health_until(traffic, lambda a: a.status == 200, since=restarted, within=30)
        await wait_until(
            lambda: traffic.first("read", lambda a: a.status == 200, since=restarted),
            within=30,
            what="reads answering 200 again",
        )
        failed = load.failed_since(crashed)
        await acked(load, 20, since=time.monotonic(), within=60)
    assert failed == [], "commands do not need the read model's database"
    assert_honest_and_bounded(traffic, load, since=crashed)
    unavailable = [a for a in traffic.of("read", since=crashed) if a.status == 503]
    assert all("read model database (PostgreSQL at" in a.error() for a in unavailable), [
        a.error() for a in unavailable[:3]
    ]
    print(
        f"reads during the outage: {len(unavailable)} x 503, "
        f"{sum('starting up' in a.error() for a in unavailable)} of them 'starting up'"
    )
    await stack.verify(load, others=traffic.users)


# -- each dependency paused (SIGSTOP) for 20 s -----------------------------------------

PAUSE = 20.0

# How /health/ready shows each paused server, and that it shows it.
SHOWS_PAUSED: dict[str, Callable[[Answer], bool]] = {
    "postgres": lambda a: a.status == 503 and backend_check(a, "query", "read_model_db") == "down",
    "clickhouse": lambda a: a.status == 503 and backend_check(a, "store", "storage") == "down",
    "kafka": lambda a: (
        a.status == 200
        and (
            backend_check(a, "store", "kafka_relay") == "degraded"
            or backend_check(a, "query", "projector") == "degraded"
        )
    ),
}


@pytest.mark.parametrize("component", ["postgres", "clickhouse", "kafka"])
async def test_paused_dependency_every_answer_within_its_bound(
    stack: Stack, component: str
) -> None:
    needs_infra(component)
    async with traffic_and_load(stack) as (traffic, load):
        await acked(load, 20)
        paused = time.monotonic()
        try:
            await infra("pause", component)
            shown = await health_until(traffic, SHOWS_PAUSED[component], since=paused, within=12)
            await asyncio.sleep(max(paused + PAUSE - time.monotonic(), 0.0))
        finally:
            await infra("resume", component)
        resumed = time.monotonic()
        healthy = await health_until(
            traffic, lambda a: (a.json() or {}).get("status") == "ok", since=resumed, within=45
        )
        await acked(load, 20, since=resumed, within=60)
    print(
        f"{component} paused: health showed it after {shown.started - paused:.1f}s "
        f"({shown!r}); ok again {healthy.started - resumed:.1f}s after resuming"
    )
    assert_honest_and_bounded(traffic, load, since=paused)
    await stack.verify(load, within=90, others=traffic.users)


# -- Kafka stopped: min_position answers at once ----------------------------------------


async def test_kafka_stopped_min_position_answers_503_promptly(stack: Stack) -> None:
    needs_infra("kafka")
    async with traffic_and_load(stack) as (traffic, load):
        await acked(load, 20)
        stopped = time.monotonic()
        try:
            await infra("stop", "kafka")
            await health_until(
                traffic,
                lambda a: backend_check(a, "query", "projector") == "degraded",
                since=stopped,
                within=30,
            )
            await acked(load, 5, since=time.monotonic())  # the head keeps moving
            user = load.acks[-1].user_id
            target = max(a.position for a in load.acks)
            answers = await stalled_answers(stack, user, target)
        finally:
            await infra("start", "kafka")
        await acked(load, 20, since=time.monotonic(), within=60)
    for what, seconds, status, message in answers:
        print(f"Kafka stopped, {what} with min_position {target}: {status} in {seconds:.3f}s")
        assert status in (503, "UNAVAILABLE"), (what, status, message)
        assert seconds < 1.0, (what, seconds)
        assert "read model stalled at position" in message, (what, message)
        assert f"position {target} cannot be reached now" in message, (what, message)
    assert_honest_and_bounded(traffic, load, since=stopped)
    await stack.verify(load, within=90, others=traffic.users)


async def stalled_answers(
    stack: Stack, user: str, target: int
) -> list[tuple[str, float, Any, str]]:
    """A read with min_position over HTTP and gRPC, and a login with X-Min-Position."""
    out: list[tuple[str, float, Any, str]] = []
    auth = {"Authorization": f"Bearer {token('fault-tests', ROLE_SERVICE)}"}
    read = await http.request(
        stack.gateway.port, "GET", f"/users/{user}?min_position={target}", headers=auth
    )
    out.append(("HTTP read", read.seconds, read.status, read.error()))
    login = await http.request(
        stack.gateway.port,
        "POST",
        "/login",
        body={"email": "nobody@example.com", "password": PASSWORD},
        headers={"X-Min-Position": str(target)},
    )
    out.append(("HTTP login", login.seconds, login.status, login.error()))
    started = time.monotonic()
    try:
        await stack.queries.GetUser(
            q.GetUserRequest(id=user, min_position=target), metadata=SERVICE, timeout=10
        )
        out.append(("gRPC read", time.monotonic() - started, "OK", ""))
    except grpc.aio.AioRpcError as exc:
        seconds = time.monotonic() - started
        out.append(("gRPC read", seconds, exc.code().name, exc.details() or ""))
    return out
