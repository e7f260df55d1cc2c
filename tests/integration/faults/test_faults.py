"""Faults of the production stack under a command load.

Each test asserts that nothing acknowledged is lost or stored twice and
that, once the fault is over, the read model equals the fold of the store
(checkpoint = head, every row's version and every login once). Every wait
is bounded; every server taken away is brought back in a ``finally``.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from asynch.connection import Connection
from cqrs.query.v1 import query_pb2 as q

from tests.auth_support import SERVICE
from tests.integration.faults.conftest import Stack
from tests.integration.faults.support import Load, infra, infra_manages
from tests.integration.kafka.support import wait_until

pytestmark = pytest.mark.integration


def needs_infra(component: str) -> None:
    if not infra_manages(component):
        pytest.skip(f"{component} is not run by scripts/infra.sh here: not stopping it")


async def acked(load: Load, count: int, *, since: float = 0.0, within: float = 30.0) -> None:
    await wait_until(
        lambda: load.acked_since(since) >= count,
        within=within,
        what=f"{count} acknowledged commands (failures: {load.failures[-3:]})",
    )


async def test_sigkill_of_query_svc_mid_stream_then_restart(stack: Stack) -> None:
    load = stack.load()
    load.start()
    try:
        await acked(load, 40)
        stack.query.kill()
        await asyncio.sleep(0.5)
        await stack.query.start()
        await acked(load, 30, since=time.monotonic())
    finally:
        await load.stop()
    await stack.verify(load)


async def test_sigkill_of_store_svc_during_load_then_restart(stack: Stack) -> None:
    load = stack.load()
    load.start()
    try:
        await acked(load, 40)
        stack.store.kill()
        # The dead writer's ClickHouse lease must expire first (15 s): start() retries.
        await stack.store.start(within=60)
        await acked(load, 30, since=time.monotonic())
    finally:
        await load.stop()
    await stack.verify(load)


async def test_kafka_down_commands_go_on_and_projections_catch_up(stack: Stack) -> None:
    needs_infra("kafka")
    load = stack.load()
    load.start()
    try:
        await acked(load, 20)
        stopped = time.monotonic()
        try:
            await infra("stop", "kafka")
            await asyncio.sleep(10)
            during = load.acked_since(stopped)
            failed = load.failed_since(stopped)
        finally:
            await infra("start", "kafka")
        assert during > 20, "commands must not wait for Kafka"
        assert failed == [], "no command may fail because Kafka is down"
        await acked(load, 20, since=time.monotonic())
    finally:
        await load.stop()
    await stack.verify(load, within=90)


async def test_postgres_down_queries_unavailable_then_projector_resumes(stack: Stack) -> None:
    needs_infra("postgres")
    load = stack.load()
    queries = stack.queries
    load.start()
    try:
        await acked(load, 20)
        user_id = load.acks[0].user_id
        stopped = time.monotonic()
        try:
            await infra("stop", "postgres")
            for call in (
                queries.GetUser(q.GetUserRequest(id=user_id), metadata=SERVICE, timeout=10),
                queries.ListUsers(q.ListUsersRequest(), metadata=SERVICE, timeout=10),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
                details = (caught.value.details() or "").lower()
                assert "read model" in details and "unavailable" in details, details
            await acked(load, 10, since=stopped)  # the write side does not need it
        finally:
            await infra("start", "postgres")
        await acked(load, 20, since=time.monotonic())
    finally:
        await load.stop()
    await stack.verify(load)


async def test_clickhouse_down_commands_unavailable_nothing_half_written(stack: Stack) -> None:
    needs_infra("clickhouse")
    load = stack.load()
    load.start()
    try:
        await acked(load, 20)
        stopped = time.monotonic()
        try:
            await infra("stop", "clickhouse")
            await wait_until(
                lambda: load.failed_since(stopped), within=20, what="a refused command"
            )
            await asyncio.sleep(2)
            codes = {code for _, _, code, _ in load.failed_since(stopped)}
        finally:
            await infra("start", "clickhouse")
        assert codes == {grpc.StatusCode.UNAVAILABLE}, load.failed_since(stopped)[:5]
        await acked(load, 20, since=time.monotonic(), within=60)
    finally:
        await load.stop()
    head = await stack.verify(load)
    await assert_clickhouse_tables_agree(stack, head)


async def assert_clickhouse_tables_agree(stack: Stack, head: int) -> None:
    """The three copies of the log hold the same positions 1..head (no half-written batch)."""
    ch = stack.store_settings.clickhouse
    conn = Connection(
        user=ch.user, password=ch.password, host=ch.host, port=ch.port, database=ch.database
    )
    await conn.connect()
    try:
        async with conn.cursor() as cursor:
            for table in ("events", "events_by_position", "event_ids"):
                await cursor.execute(
                    f"SELECT uniqExact(position), min(position), max(position) FROM {table}"
                )
                assert await cursor.fetchall() == [(head, 1, head)], table
    finally:
        await conn.close()
