"""The schema change that adds the lease epoch to a database created before fencing
(ClickHouse schema migration 2, run by ``cqrs-admin migrate``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from cqrs_admin import clickhouse
from service_kit.schema_versions import SchemaMismatch
from store_svc.engine import ClickHouseConfig, ClickHouseStorage, EventStore, ExpectedVersion
from store_svc.engine.clickhouse_fencing import EPOCH_TABLES, add_epoch_columns
from store_svc.engine.clickhouse_storage import QueryRunner
from tests.integration.store_engine.support import T0, new_event, read_everything

pytestmark = pytest.mark.integration

# The tables as the store created them before fencing (no epoch column anywhere).
_EVENT_COLUMNS = (
    "position UInt64, event_id String, aggregate_id String, aggregate_type String, "
    "version UInt64, event_type String, timestamp DateTime('UTC'), timestamp_us UInt64, "
    "payload String, correlation_id String, causation_id String, claims String, "
    "releases String"
)
_ENGINE = "ENGINE = MergeTree() PARTITION BY tuple()"
OLD_SCHEMA = [
    f"CREATE TABLE {{db}}.events ({_EVENT_COLUMNS}) {_ENGINE} ORDER BY (aggregate_id, version)",
    f"CREATE TABLE {{db}}.events_by_position ({_EVENT_COLUMNS}) {_ENGINE} ORDER BY position",
    "CREATE TABLE {db}.event_ids (event_id String, aggregate_id String, version UInt64, "
    f"position UInt64) {_ENGINE} ORDER BY event_id",
    "CREATE TABLE {db}.snapshots (aggregate_id String, version UInt64, schema_version UInt32, "
    "state String, created_at DateTime('UTC'), created_at_us UInt64) "
    f"{_ENGINE} ORDER BY (aggregate_id, version)",
    "CREATE TABLE {db}.writer_lease (owner String, acquired UInt64, heartbeat UInt64, "
    "released UInt8, seq UInt64) ENGINE = ReplacingMergeTree(seq) ORDER BY owner",
]
OLD_ROW = (
    "INSERT INTO {db}.{table} SELECT 1, 'old-event', 'old-user', 'user', 1, 'test.happened', "
    "toDateTime(1735689600, 'UTC'), 1735689600000000, '{{}}', '', '', '', ''"
)


class Raw:
    """Statements on a plain connection to ``default`` (no event-store schema step)."""

    def __init__(self, run: QueryRunner) -> None:
        self._run = run

    async def _fetch(self, operation: str, statement: str) -> list[tuple[Any, ...]]:
        return await self._run(operation, statement, None)


@pytest.fixture
async def old_database() -> AsyncIterator[tuple[ClickHouseConfig, Raw]]:
    """A database in the pre-fencing schema holding one event; dropped afterwards."""
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip("CLICKHOUSE_HOST is not set (scripts/infra.sh starts ClickHouse)")
    config = ClickHouseConfig.from_env(database=f"test_migrate_{uuid.uuid4().hex[:12]}")
    db = config.database
    async with clickhouse.session(config) as run:
        admin = Raw(run)
        await admin._fetch("test: create", f"CREATE DATABASE {db}")
        try:
            for statement in OLD_SCHEMA:
                await admin._fetch("test: old schema", statement.format(db=db))
            for table in ("events", "events_by_position"):
                await admin._fetch("test: old row", OLD_ROW.format(db=db, table=table))
            await admin._fetch(
                "test: old id",
                f"INSERT INTO {db}.event_ids SELECT 'old-event', 'old-user', 1, 1",
            )
            yield config, admin
        finally:
            await admin._fetch("test: drop", f"DROP DATABASE IF EXISTS {db}")


async def epoch_columns(admin: Raw, db: str) -> set[str]:
    rows = await admin._fetch(
        "test: columns",
        f"SELECT table FROM system.columns WHERE database = '{db}' AND name = 'epoch'",
    )
    return {str(row[0]) for row in rows}


async def test_migrating_an_old_database_adds_the_epoch_and_keeps_its_events(
    old_database: tuple[ClickHouseConfig, Raw],
) -> None:
    config, admin = old_database
    assert await epoch_columns(admin, config.database) == set()
    with pytest.raises(SchemaMismatch, match="cqrs-admin migrate"):
        await EventStore.open(ClickHouseStorage(config))  # a legacy database is not changed
    assert await epoch_columns(admin, config.database) == set()
    # `cqrs-admin migrate` opens it with migrate=True; the second open finds it current.
    for opened in range(2):
        store = await EventStore.open(ClickHouseStorage(config, migrate=opened == 0))
        try:
            assert await store.stream_version("old-user") == 1 + opened  # the old event counts
            result = await store.append(
                "old-user",
                "user",
                ExpectedVersion.exact(await store.stream_version("old-user")),
                [new_event()],
                now=T0,
            )
            assert result.version == await store.stream_version("old-user")
            events = await read_everything(store)
            assert events[0].event_id == "old-event"
            assert [event.position for event in events] == list(range(1, len(events) + 1))
        finally:
            await store.close()
    assert await epoch_columns(admin, config.database) >= set(EPOCH_TABLES)


async def test_a_column_added_meanwhile_by_another_process_is_no_error(
    old_database: tuple[ClickHouseConfig, Raw],
) -> None:
    config, admin = old_database
    db = config.database

    async def stale_lookup(operation: str, statement: str) -> Sequence[Sequence[object]]:
        # As if another store added the columns between our lookup and our ALTERs.
        if statement.startswith("SELECT"):
            for table in EPOCH_TABLES:
                await admin._fetch(
                    "test: racing alter", f"ALTER TABLE {db}.{table} ADD COLUMN epoch UInt64"
                )
            return []
        return await admin._fetch(operation, statement)

    await add_epoch_columns(stale_lookup, db)
    assert await epoch_columns(admin, db) == set(EPOCH_TABLES)
