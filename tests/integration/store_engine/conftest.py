"""Fixtures: every contract test runs against each storage adapter.

* sqlite: a fresh file in the test's tmp folder.
* clickhouse: one fresh, uniquely named database per test module (dropped at
  the end of the module), on the server named by CLICKHOUSE_HOST /
  CLICKHOUSE_USER / CLICKHOUSE_PASSWORD. Skipped only if CLICKHOUSE_HOST is
  unset. Tests therefore never assume an empty store: they use their own
  aggregate ids and positions relative to the head at their start.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asynch
import pytest

from store_svc.engine import ClickHouseConfig, ClickHouseStorage, SqliteStorage
from tests.integration.store_engine.support import Backend, Harness

BACKENDS = ["sqlite", "clickhouse"]


@pytest.fixture(scope="module")
async def clickhouse_config() -> AsyncIterator[ClickHouseConfig]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip("CLICKHOUSE_HOST is not set (CI sets it; scripts/infra.sh starts ClickHouse)")
    config = ClickHouseConfig.from_env(database=f"test_engine_{uuid.uuid4().hex[:12]}")
    try:
        yield config
    finally:
        async with (
            asynch.connect(
                host=config.host,
                port=config.port,
                user=config.user,
                password=config.password,
                connect_timeout=5,
                send_receive_timeout=30,
            ) as conn,
            conn.cursor() as cursor,
        ):
            await cursor.execute(f"DROP DATABASE IF EXISTS `{config.database}`")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "events.sqlite3"
        return Backend("sqlite", lambda: SqliteStorage(path))
    config: ClickHouseConfig = request.getfixturevalue("clickhouse_config")
    return Backend("clickhouse", lambda: ClickHouseStorage(config))


@pytest.fixture
async def harness(backend: Backend) -> AsyncIterator[Harness]:
    harness = Harness(backend)
    try:
        yield harness
    finally:
        await harness.aclose()
