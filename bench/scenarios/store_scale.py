"""Scenario 10: the store's cost against the number of users (issue 10, bounded memory).

In process, on the stack's backend: SQLite (embedded) with ``Budget.scale_users``
users (1,000,000; quick: 100,000), ClickHouse (production) with a fifth of that
(200,000), and a store of a tenth of each for the ratio. Stores are filled with
bulk INSERTs (store_svc.engine.scale_probe), not through the API.

Figures: the time ``EventStore.open`` takes (fastest of 5, in a fresh process)
and the RSS it adds, with the ratio to the store ten times smaller (target:
<= 2, i.e. flat); and appends/s with cold caches (e-mail changes of distinct
existing users: head, old and new address all missed), for new users, and
warm (the same users again), with the cold/new ratio (target >= 0.5).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

from bench import infra_cleanup
from bench.context import RunContext
from bench.report import Row, Target
from bench.stack import EMBEDDED
from store_svc.engine import ClickHouseConfig, ClickHouseStorage, SqliteStorage
from store_svc.engine.scale_probe import (
    AppendRates,
    OpenCost,
    append_rates,
    fill_clickhouse,
    fill_sqlite,
    open_cost,
)

__all__ = ["run"]

NUMBER = 10
FLAT = Target("<=", 2.0, text="<= 2.00 x the store 10x smaller")
COLD = Target(">=", 0.5, text=">= 0.50 x new streams")
MAX_RSS = Target("<=", 40.0, on_figure=True, text="<= 40 MB")
_APPENDS = 5_000


async def _sqlite(users: int) -> tuple[OpenCost, OpenCost, AppendRates]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        small, large = Path(folder) / "small.sqlite3", Path(folder) / "large.sqlite3"
        await fill_sqlite(small, users // 10)
        await fill_sqlite(large, users)
        small_cost = await asyncio.to_thread(open_cost, "sqlite", str(small))
        large_cost = await asyncio.to_thread(open_cost, "sqlite", str(large))
        rates = await append_rates(SqliteStorage(large), users, _APPENDS)
    return small_cost, large_cost, rates


async def _clickhouse(infra: dict[str, str], users: int) -> tuple[OpenCost, OpenCost, AppendRates]:
    names = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        small, large = (ClickHouseConfig.from_env(infra, database=name) for name in names)
        await fill_clickhouse(small, users // 10)
        await fill_clickhouse(large, users)
        small_cost = await asyncio.to_thread(open_cost, "clickhouse", small.database)
        large_cost = await asyncio.to_thread(open_cost, "clickhouse", large.database)
        rates = await append_rates(ClickHouseStorage(large), users, _APPENDS)
    finally:
        for name in names:
            await infra_cleanup.drop_clickhouse_database(infra, name)
    return small_cost, large_cost, rates


async def run(ctx: RunContext) -> list[Row]:
    stack = ctx.stack.name
    if stack == EMBEDDED:
        backend, users = "SQLite", ctx.budget.scale_users
        small, large, rates = await _sqlite(users)
    else:
        backend, users = "ClickHouse", ctx.budget.scale_users // 5
        small, large, rates = await _clickhouse(ctx.stack.infra, users)
    details = {
        "users": users,
        "small_store_users": users // 10,
        "open_s": {"small": small.seconds, "large": large.seconds},
        "open_rss_mb": {"small": small.rss_mb, "large": large.rss_mb},
        "appends": _APPENDS,
        "appends_per_s": {
            "cold_existing": rates.cold_existing,
            "new_streams": rates.new_streams,
            "warm_existing": rates.warm_existing,
        },
    }
    return [
        Row(
            NUMBER,
            stack,
            f"{backend}: open a store of {users:,} users",
            large.seconds * 1000,
            "ms",
            ratio=large.seconds / small.seconds,
            ratio_to=f"{users // 10:,} users",
            target=FLAT,
            details=details,
        ),
        Row(
            NUMBER,
            stack,
            f"{backend}: RSS added by opening a store of {users:,} users",
            large.rss_mb,
            "MB",
            target=MAX_RSS,
        ),
        Row(
            NUMBER,
            stack,
            f"{backend}: appends to existing users, cold caches",
            rates.cold_existing,
            "appends/s",
            ratio=rates.cold_existing / rates.new_streams,
            ratio_to="new streams",
            target=COLD,
        ),
        Row(NUMBER, stack, f"{backend}: appends to new streams", rates.new_streams, "appends/s"),
        Row(
            NUMBER,
            stack,
            f"{backend}: appends to existing users, warm caches",
            rates.warm_existing,
            "appends/s",
            ratio=rates.warm_existing / rates.cold_existing,
            ratio_to="cold",
        ),
    ]
