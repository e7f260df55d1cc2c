"""The store's cost does not grow with the number of users (issue 10, "Scale").

* Opening a store of 10x the users takes at most twice the time (fastest of
  five opens, each side in its own fresh process) and adds at most 40 MB of
  resident memory: heads and claims are not loaded at open.
* With cold caches, appends to existing users (an e-mail change: the head,
  the old and the new address are all cache misses) run at >= 0.5 x the rate
  of appends to new streams: the misses of a batch cost one keyed lookup.

Ratios and memory are measured within one run; no absolute time is asserted.
The stores are filled with bulk INSERTs (store_svc.engine.scale_probe).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asynch
import pytest

from store_svc.engine import ClickHouseConfig, ClickHouseStorage, SqliteStorage
from store_svc.engine.scale_probe import (
    append_rates,
    fill_clickhouse,
    fill_sqlite,
    open_cost,
)
from store_svc.engine.sqlite_storage import heads_query, owners_query

pytestmark = pytest.mark.integration

MAX_OPEN_RATIO = 2.0
MAX_OPEN_RSS_MB = 40.0
MIN_COLD_TO_NEW = 0.5
APPENDS = 2_000


async def test_sqlite_open_and_cold_appends_do_not_grow_with_users(tmp_path: Path) -> None:
    small, large = tmp_path / "small.sqlite3", tmp_path / "large.sqlite3"
    await fill_sqlite(small, 20_000)
    await fill_sqlite(large, 200_000)

    small_cost = open_cost("sqlite", str(small))
    large_cost = open_cost("sqlite", str(large))
    assert large_cost.seconds <= MAX_OPEN_RATIO * small_cost.seconds, (small_cost, large_cost)
    assert large_cost.rss_mb <= MAX_OPEN_RSS_MB, large_cost

    rates = await append_rates(SqliteStorage(large), 200_000, APPENDS)
    assert rates.cold_existing >= MIN_COLD_TO_NEW * rates.new_streams, rates


async def test_sqlite_lookups_use_the_indexes(tmp_path: Path) -> None:
    """Heads and claims are read through an index (a scan would pass the ratio at
    small sizes by luck, so the plans are checked too)."""
    path = tmp_path / "plans.sqlite3"
    await fill_sqlite(path, 10)
    with sqlite3.connect(path) as conn:
        heads = conn.execute(f"EXPLAIN QUERY PLAN {heads_query(2)}", ("a", "b")).fetchall()
        owners = conn.execute(
            f"EXPLAIN QUERY PLAN {owners_query(2)}", ("email", "a", "b")
        ).fetchall()
    plans = " | ".join(str(row[-1]) for row in (*heads, *owners))
    assert "SCAN" not in plans, plans
    assert "SEARCH events" in plans and "SEARCH claims" in plans, plans


@pytest.fixture
async def clickhouse_databases() -> AsyncIterator[tuple[ClickHouseConfig, ClickHouseConfig]]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip("CLICKHOUSE_HOST is not set (scripts/infra.sh starts ClickHouse)")
    tag = uuid.uuid4().hex[:10]
    configs = (
        ClickHouseConfig.from_env(database=f"test_scale_small_{tag}"),
        ClickHouseConfig.from_env(database=f"test_scale_large_{tag}"),
    )
    try:
        yield configs
    finally:
        first = configs[0]
        async with (
            asynch.connect(
                host=first.host,
                port=first.port,
                user=first.user,
                password=first.password,
                connect_timeout=5,
                send_receive_timeout=60,
            ) as conn,
            conn.cursor() as cursor,
        ):
            for config in configs:
                await cursor.execute(f"DROP DATABASE IF EXISTS `{config.database}`")


async def test_clickhouse_open_and_cold_appends_do_not_grow_with_users(
    clickhouse_databases: tuple[ClickHouseConfig, ClickHouseConfig],
) -> None:
    small, large = clickhouse_databases
    await fill_clickhouse(small, 10_000)
    await fill_clickhouse(large, 100_000)

    small_cost = open_cost("clickhouse", small.database)
    large_cost = open_cost("clickhouse", large.database)
    assert large_cost.seconds <= MAX_OPEN_RATIO * small_cost.seconds, (small_cost, large_cost)
    assert large_cost.rss_mb <= MAX_OPEN_RSS_MB, large_cost

    rates = await append_rates(ClickHouseStorage(large), 100_000, APPENDS)
    assert rates.cold_existing >= MIN_COLD_TO_NEW * rates.new_streams, rates
