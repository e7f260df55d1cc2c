"""What each adapter does beyond the shared contract: ClickHouse's repair of half-written
batches, duplicate rows and the writer lease; SQLite's durability settings and lock file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from store_svc.engine import (
    AppendResult,
    ClickHouseConfig,
    ClickHouseStorage,
    EventStore,
    ExpectedVersion,
    SqliteStorage,
    StorageUnavailable,
    WriterLockHeld,
)
from tests.integration.store_engine.support import T0, new_event, read_everything, uid

pytestmark = pytest.mark.integration


async def _sql(storage: ClickHouseStorage, query: str) -> list[tuple[Any, ...]]:
    return await storage._fetch("test query", query)


@pytest.mark.parametrize("landed_in", ["events", "events_by_position"])
async def test_clickhouse_half_written_batch_is_completed_on_reload(
    clickhouse_config: ClickHouseConfig, monkeypatch: pytest.MonkeyPatch, landed_in: str
) -> None:
    storage = ClickHouseStorage(clickhouse_config)
    store = await EventStore.open(storage)
    try:
        stream = f"agg-{uid()}"
        await store.append(stream, "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0)
        base = store.head_position()
        real_insert = storage._insert

        async def only_one_table(operation: str, query: str, rows: Any, query_id: str) -> None:
            # The batch reaches one table only: a crash or a failure between INSERTs.
            if f".{landed_in} " not in query:
                raise StorageUnavailable("injected: insert lost")
            await real_insert(operation, query, rows, query_id)

        monkeypatch.setattr(storage, "_insert", only_one_table)
        events = [new_event(), new_event()]
        with pytest.raises(StorageUnavailable):
            await store.append(stream, "thing", ExpectedVersion.exact(1), events, now=T0)
        monkeypatch.setattr(storage, "_insert", real_insert)

        # Rows in either table count as committed; the reload copied them everywhere.
        assert store.head_position() == base + 2
        assert [e.position for e in await read_everything(store, base)] == [base + 1, base + 2]
        assert [e.version for e in await store.read_stream(stream)] == [1, 2, 3]
        retried = await store.append(stream, "thing", ExpectedVersion.exact(1), events, now=T0)
        assert retried == AppendResult(stream, 3, (base + 1, base + 2), idempotent=True)
        db = clickhouse_config.database
        for table in ("events", "events_by_position", "event_ids"):
            rows = await _sql(storage, f"SELECT count() FROM {db}.{table} WHERE position > {base}")
            assert rows == [(2,)], table
    finally:
        await store.close()


async def test_clickhouse_duplicate_rows_are_never_counted_twice(
    clickhouse_config: ClickHouseConfig,
) -> None:
    storage = ClickHouseStorage(clickhouse_config)
    store = await EventStore.open(storage)
    stream = f"agg-{uid()}"
    await store.append(stream, "thing", ExpectedVersion.ANY, [new_event(), new_event()], now=T0)
    base = store.head_position() - 2
    total = await store.count()
    db = clickhouse_config.database
    for table in ("events", "events_by_position"):  # e.g. a repair run twice by hand
        await _sql(
            storage,
            f"INSERT INTO {db}.{table} SELECT * FROM {db}.{table} WHERE aggregate_id = '{stream}'",
        )
    await store.close()

    reopened = await EventStore.open(ClickHouseStorage(clickhouse_config))
    try:
        assert reopened.head_position() == base + 2
        assert await reopened.stream_version(stream) == 2
        assert [e.version for e in await reopened.read_stream(stream)] == [1, 2]
        assert [e.position for e in await read_everything(reopened, base)] == [base + 1, base + 2]
        assert len(await reopened.read_all(after_position=base, aggregate_id=stream)) == 2
        assert await reopened.count() == total
        assert await reopened.count(aggregate_id=stream) == 2
        result = await reopened.append(
            stream, "thing", ExpectedVersion.exact(2), [new_event()], now=T0
        )
        assert result.positions == (base + 3,)
    finally:
        await reopened.close()


async def test_clickhouse_lease_of_another_owner(clickhouse_config: ClickHouseConfig) -> None:
    owner = f"crashed-{uid()}"
    storage = ClickHouseStorage(clickhouse_config)
    db = clickhouse_config.database
    await _sql(
        storage,
        f"INSERT INTO {db}.writer_lease (owner, acquired, heartbeat, released, seq) "
        f"SELECT '{owner}', toUInt64(now()), toUInt64(now()), 0, 1",
    )
    with pytest.raises(WriterLockHeld) as caught:
        await EventStore.open(storage)
    assert owner in str(caught.value) and "writer_lease" in str(caught.value)

    # Its last heartbeat is now older than the lease: the writer crashed, we may take over.
    await _sql(
        storage,
        f"INSERT INTO {db}.writer_lease (owner, acquired, heartbeat, released, seq) "
        f"SELECT '{owner}', toUInt64(now()) - 100, toUInt64(now()) - 100, 0, 2",
    )
    store = await EventStore.open(storage)
    await store.close()


async def test_clickhouse_refuses_to_write_on_an_unrenewed_lease(
    clickhouse_config: ClickHouseConfig,
) -> None:
    storage = ClickHouseStorage(clickhouse_config, lease_heartbeat=0.3)
    store = await EventStore.open(storage)
    try:
        stream = f"agg-{uid()}"
        storage._lease_valid_until = 0.0  # as if renewals had failed for lease_ttl - margin
        with pytest.raises(StorageUnavailable, match="renewed"):
            await store.append(stream, "thing", ExpectedVersion.ANY, [new_event()], now=T0)
        assert await store.stream_version(stream) == 0
        await asyncio.sleep(1)  # the heartbeat renews it
        await store.append(stream, "thing", ExpectedVersion.ANY, [new_event()], now=T0)
    finally:
        await store.close()


async def test_sqlite_is_durable_wal_and_locked_by_a_file(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    store = await EventStore.open(SqliteStorage(path))
    try:
        await store.append(f"agg-{uid()}", "thing", ExpectedVersion.ANY, [new_event()], now=T0)
        probe = SqliteStorage(path)
        async with probe._engine.connect() as conn:
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            synchronous = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
        await probe.close()
        assert (journal, synchronous) == ("wal", 2)  # 2 = FULL: fsync at every commit
        lock_file = tmp_path / "events.sqlite3.writer.lock"
        assert "pid" in lock_file.read_text()
        second = SqliteStorage(path)
        with pytest.raises(WriterLockHeld, match=r"events\.sqlite3\.writer\.lock"):
            await EventStore.open(second)
        await second.close()
    finally:
        await store.close()


async def _append_traced(store: EventStore, traceparent: str) -> str:
    stream = f"agg-{uid()}"
    await store.append(
        stream, "thing", ExpectedVersion.NO_STREAM, [new_event()], now=T0, traceparent=traceparent
    )
    return stream


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_sqlite_keeps_the_traceparent_and_migrate_adds_its_column_to_an_older_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite3"
    store = await EventStore.open(SqliteStorage(path))
    old = await _append_traced(store, "")
    await store.close()
    # The file as a release before the column was added left it.
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE events DROP COLUMN traceparent")
        conn.execute("DROP TABLE schema_migrations")  # a file from before versions
    store = await EventStore.open(SqliteStorage(path, migrate=True))  # cqrs-admin migrate
    try:
        new = await _append_traced(store, TRACEPARENT)
        stored = {
            e.aggregate_id: e.traceparent
            for e in await read_everything(store)
            if e.aggregate_id in (old, new)  # the database may hold other tests' events
        }
    finally:
        await store.close()
    assert stored == {old: "", new: TRACEPARENT}


async def test_clickhouse_keeps_the_traceparent_and_migrate_adds_its_column_to_older_tables(
    clickhouse_config: ClickHouseConfig,
) -> None:
    storage = ClickHouseStorage(clickhouse_config)
    store = await EventStore.open(storage)
    old = await _append_traced(store, "")
    db = clickhouse_config.database
    for table in ("events", "events_by_position"):
        await _sql(storage, f"ALTER TABLE {db}.{table} DROP COLUMN traceparent")
    await _sql(storage, f"DROP TABLE {db}.schema_migrations")  # from before versions
    await store.close()
    store = await EventStore.open(ClickHouseStorage(clickhouse_config, migrate=True))
    try:
        new = await _append_traced(store, TRACEPARENT)
        stored = {
            e.aggregate_id: e.traceparent
            for e in await read_everything(store)
            if e.aggregate_id in (old, new)  # the database may hold other tests' events
        }
    finally:
        await store.close()
    assert stored == {old: "", new: TRACEPARENT}
