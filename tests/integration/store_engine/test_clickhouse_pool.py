"""The store's ClickHouse pool on a real server: reuse without pings, drop on failure.

A connection that served a query normally comes back and is handed out
again with no round trip; one whose query failed or was cut off by a
deadline is never handed out again, and the next query on the pool gets its
own answer (not the rest of the interrupted one).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asynch.connection import Connection

from store_svc.engine.clickhouse_pool import ClickHousePool
from store_svc.engine.clickhouse_storage import ClickHouseConfig


@pytest.fixture
async def pool() -> AsyncIterator[ClickHousePool]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip("CLICKHOUSE_HOST is not set (CI sets it; scripts/infra.sh starts ClickHouse)")
    config = ClickHouseConfig.from_env(database="default")
    pool = ClickHousePool(
        minsize=1,
        maxsize=4,
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password,
        database="default",
        connect_timeout=5,
        send_receive_timeout=None,
        sync_request_timeout=5,
        liveness_grace=60.0,  # no checkout ping in these tests: only returns are measured
    )
    await pool.startup()
    try:
        yield pool
    finally:
        await pool.shutdown()


async def _select(pool: ClickHousePool, query: str) -> tuple[Connection, list[Any]]:
    async with pool.connection() as conn, conn.cursor() as cursor:
        await cursor.execute(query)
        return conn, list(await cursor.fetchall())


async def test_a_connection_comes_back_without_a_ping(
    pool: ClickHousePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = 0
    ping = Connection.ping

    async def counted(self: Connection) -> None:
        nonlocal pings
        pings += 1
        await ping(self)

    await _select(pool, "SELECT 0")  # the start-up connection's first checkout pings
    monkeypatch.setattr(Connection, "ping", counted)
    used = set()
    for i in range(20):
        conn, rows = await _select(pool, f"SELECT {i}")
        assert rows == [(i,)]
        used.add(id(conn))
    assert pings == 0
    assert len(used) == 1  # the same connection, reused
    assert (pool.free_connections, pool.acquired_connections) == (1, 0)


async def test_a_failed_query_drops_its_connection(pool: ClickHousePool) -> None:
    first, _ = await _select(pool, "SELECT 1")
    with pytest.raises(Exception, match=r"(?i)unknown|syntax|exception"):
        await _select(pool, "SELECT no_such_column FROM system.one")
    assert pool.free_connections == 0  # the failed one was dropped, not kept
    second, rows = await _select(pool, "SELECT 2")
    assert rows == [(2,)]
    assert second is not first
    assert pool.acquired_connections == 0


async def test_a_query_cut_off_by_a_deadline_leaves_nothing_behind(pool: ClickHousePool) -> None:
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await _select(pool, "SELECT sleep(2), 'stale'")
    assert asyncio.get_running_loop().time() - started < 1.5  # not held by the close
    assert (pool.free_connections, pool.acquired_connections) == (0, 0)
    for i in range(3):  # a fresh connection each time it is needed; answers are their own
        _, rows = await _select(pool, f"SELECT {i}, 'fresh'")
        assert rows == [(i, "fresh")]
