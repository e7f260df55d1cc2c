"""Schema versions on the real stores: a fresh store is created at the code's version,
a store of the previous schema (made by this code, then stripped of its version
table: what a release before versions left) is refused until ``cqrs-admin migrate``,
and a store newer than the code is refused; a migrated store equals a fresh one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from cqrs_admin import clickhouse
from query_svc.db import MIGRATIONS as READ_MODEL_MIGRATIONS
from query_svc.db import Database
from query_svc.session_tables import SESSION_TABLES
from query_svc.settings import QuerySettings
from service_kit import schema_versions
from service_kit.limit_store import LIMIT_METADATA
from service_kit.schema_versions import Migration, SchemaMismatch, SchemaReport
from service_kit.sql_schema import SqlSchema
from store_svc.engine import ClickHouseConfig, ClickHouseStorage, SqliteStorage
from store_svc.engine.clickhouse_storage import MIGRATIONS as CLICKHOUSE_MIGRATIONS
from store_svc.engine.clickhouse_storage import ClickHouseSchema
from store_svc.engine.sqlite_storage import MIGRATIONS as SQLITE_MIGRATIONS
from tests import auth_support
from tests.integration.query_svc.conftest import drop_schema, read_model_env

pytestmark = pytest.mark.integration

ES_LATEST = SQLITE_MIGRATIONS[-1].version  # 3: claims as keyed digests
OLDER = f"older than this code's {ES_LATEST}: stop the services and run `cqrs-admin migrate`"
NEWER = f"newer than this code's {ES_LATEST}"
RM_LATEST = READ_MODEL_MIGRATIONS[-1].version  # 2: limit_events
RM_OLDER = f"older than this code's {RM_LATEST}: stop the services and run `cqrs-admin migrate`"
CH_LATEST = CLICKHOUSE_MIGRATIONS[-1].version  # 4: claims as keyed digests
CH_OLDER = f"older than this code's {CH_LATEST}: stop the services and run `cqrs-admin migrate`"


# --- SQLite event store ------------------------------------------------------------


def _sqlite(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement)


def _columns(path: Path) -> dict[str, list[tuple[str, str]]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}


async def test_sqlite_event_store_versions(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.sqlite3"
    storage = await SqliteStorage.open(fresh)
    assert storage.schema_report is not None
    assert (storage.schema_report.found, storage.schema_report.version) == (None, ES_LATEST)
    await storage.close()

    legacy = tmp_path / "legacy.sqlite3"
    await (await SqliteStorage.open(legacy)).close()
    _sqlite(legacy, "DROP TABLE schema_migrations")
    with pytest.raises(SchemaMismatch, match="version 0, " + OLDER[:20]) as refused:
        await SqliteStorage.open(legacy)
    assert OLDER in str(refused.value)
    migrated = await SqliteStorage.open(legacy, migrate=True)
    assert migrated.schema_report is not None
    assert migrated.schema_report.applied == [m.version for m in SQLITE_MIGRATIONS]
    await migrated.close()
    await (await SqliteStorage.open(legacy)).close()  # accepted now
    assert _columns(legacy) == _columns(fresh)

    _sqlite(
        legacy, f"INSERT INTO schema_migrations VALUES ({ES_LATEST + 1}, 'from the future', '')"
    )
    with pytest.raises(SchemaMismatch, match=NEWER):
        await SqliteStorage.open(legacy)


def test_services_refuse_another_version_in_one_line_and_migrate_fixes_it(
    tmp_path: Path,
) -> None:
    """The processes: store_svc (older store) and query_svc (newer read model) exit 1
    with one line; `cqrs-admin migrate` then brings the old store up to date."""
    data = tmp_path / "data"
    data.mkdir()
    events = data / "events.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLICKHOUSE_", "KAFKA_"))},
        **auth_support.TEST_ENV,
        "DATA_DIR": str(data),
        "EVENT_STORE_BACKEND": "sqlite",
        "QUERY_DB_BACKEND": "sqlite",
        "STORE_GRPC_LISTEN": "127.0.0.1:0",
    }

    def run(*module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *module],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # the exit status is asserted
        )

    created = run("cqrs_admin", "migrate")
    assert created.returncode == 0, created.stderr
    assert f"created at version {ES_LATEST}" in created.stdout
    _sqlite(events, "DROP TABLE schema_migrations")

    store = run("store_svc")
    assert store.returncode == 1
    assert store.stderr.strip().splitlines() == [
        f"store_svc: SQLite event store {events} has schema version 0, {OLDER}"
    ]
    read_model = data / "read_model.sqlite3"
    _sqlite(
        read_model,
        f"INSERT INTO schema_migrations VALUES ({RM_LATEST + 1}, 'from the future', '')",
    )
    query = run("query_svc")
    assert query.returncode == 1
    assert query.stderr.strip().splitlines()[-1] == (
        f"query_svc: read model (SQLite at {read_model}) has schema version {RM_LATEST + 1}, "
        f"newer than this code's {RM_LATEST}: run the release that wrote it (or newer), "
        "or restore a backup made by this one"
    )
    _sqlite(read_model, f"DELETE FROM schema_migrations WHERE version = {RM_LATEST + 1}")

    done = run("cqrs_admin", "migrate")
    assert done.returncode == 0, done.stderr
    applied = ", ".join(str(m.version) for m in SQLITE_MIGRATIONS)
    assert (
        f"SQLite event store {events}: migrated from version 0 to {ES_LATEST} (applied {applied})"
        in done.stdout
    ), done.stdout
    status = run("cqrs_admin", "status")
    assert f"schema version  {ES_LATEST} (current)" in status.stdout, status.stdout
    assert f"schema version  {RM_LATEST} (current)" in status.stdout, status.stdout


# --- read model: SQLite and PostgreSQL ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def read_model(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    settings = QuerySettings.from_env(read_model_env(str(request.param), tmp_path / "rm"))
    database = Database.from_settings(settings)
    try:
        yield database
    finally:
        await database.close()
        if settings.db_backend == "postgres":
            await drop_schema(settings)


async def _ensure(read_model: Database, *, migrate: bool = False) -> SchemaReport:
    schema = ""
    if read_model.backend == "postgres":
        async with read_model.read() as conn:
            schema = str((await conn.execute(text("SHOW search_path"))).scalar_one())
    return await read_model.ensure_schema(
        schema=schema, also=[SESSION_TABLES.metadata, LIMIT_METADATA], migrate=migrate
    )


async def _read_model_columns(read_model: Database) -> dict[str, list[str]]:
    def columns(sync_conn: object) -> dict[str, list[str]]:
        inspector = inspect(sync_conn)
        return {
            t: sorted(c["name"] for c in inspector.get_columns(t))
            for t in sorted(inspector.get_table_names())
        }

    async with read_model.read() as conn:
        return await conn.run_sync(columns)


async def test_read_model_versions(read_model: Database) -> None:
    report = await _ensure(read_model)
    assert (report.found, report.version) == (None, RM_LATEST)
    fresh = await _read_model_columns(read_model)
    async with read_model.write() as conn:
        await conn.execute(text("DROP TABLE schema_migrations"))
    with pytest.raises(SchemaMismatch, match="has schema version 0") as refused:
        await _ensure(read_model)
    assert RM_OLDER in str(refused.value)
    migrated = await _ensure(read_model, migrate=True)
    assert migrated.applied == [m.version for m in READ_MODEL_MIGRATIONS]
    await _ensure(read_model)  # accepted now
    assert await _read_model_columns(read_model) == fresh
    async with read_model.write() as conn:
        await conn.execute(
            text(f"INSERT INTO schema_migrations VALUES ({RM_LATEST + 1}, 'from the future', '')")
        )
    with pytest.raises(SchemaMismatch, match=f"newer than this code's {RM_LATEST}"):
        await _ensure(read_model)


# --- ClickHouse event store ----------------------------------------------------------


@pytest.fixture
async def clickhouse_config() -> AsyncIterator[ClickHouseConfig]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip('CLICKHOUSE_HOST is not set (eval "$(scripts/infra.sh env)")')
    config = ClickHouseConfig.from_env(os.environ, database=f"admin_schema_{uuid.uuid4().hex[:10]}")
    yield config
    async with clickhouse.session(config) as run:
        await run("drop", f"DROP DATABASE IF EXISTS {config.database}", None)


async def _ch_columns(config: ClickHouseConfig) -> list[tuple[str, str, str]]:
    async with clickhouse.session(config) as run:
        rows = await run(
            "columns",
            "SELECT table, name, type FROM system.columns WHERE database = %(db)s "
            "ORDER BY table, name",
            {"db": config.database},
        )
    return [(str(t), str(n), str(ty)) for t, n, ty in rows]


async def test_clickhouse_event_store_versions(clickhouse_config: ClickHouseConfig) -> None:
    config, db = clickhouse_config, clickhouse_config.database
    storage = await ClickHouseStorage.open(config)
    assert storage.schema_report is not None and storage.schema_report.found is None
    await storage.close()
    fresh = await _ch_columns(config)
    async with clickhouse.session(config) as run:
        await run("drop", f"DROP TABLE {db}.schema_migrations", None)
    with pytest.raises(SchemaMismatch, match="has schema version 0") as refused:
        await ClickHouseStorage.open(config)
    assert CH_OLDER in str(refused.value)
    migrated = await ClickHouseStorage.open(config, migrate=True)
    assert migrated.schema_report is not None
    assert migrated.schema_report.applied == [m.version for m in CLICKHOUSE_MIGRATIONS]
    await migrated.close()
    await (await ClickHouseStorage.open(config)).close()
    assert await _ch_columns(config) == fresh
    async with clickhouse.session(config) as run:
        await run(
            "insert",
            f"INSERT INTO {db}.schema_migrations (version, summary, applied_at) "
            "SELECT %(v)s, 'from the future', now()",
            {"v": CH_LATEST + 1},
        )
    with pytest.raises(SchemaMismatch, match=f"newer than this code's {CH_LATEST}"):
        await ClickHouseStorage.open(config)


# --- a migration added the documented way (one function, one line) ---------------------


async def _add_note(schema: ClickHouseSchema) -> None:
    for table in ("events", "events_by_position"):
        await schema.add_column(table, "note", "String DEFAULT ''")


async def test_clickhouse_a_new_migration_runs_once_and_is_safe_to_repeat(
    clickhouse_config: ClickHouseConfig,
) -> None:
    config, db = clickhouse_config, clickhouse_config.database
    await (await ClickHouseStorage.open(config)).close()
    with_note = (*CLICKHOUSE_MIGRATIONS, Migration(CH_LATEST + 1, "note column", _add_note))
    async with clickhouse.session(config) as run:
        schema = ClickHouseSchema(config, run)
        await _add_note(schema)  # a run that failed after the ALTERs, before its row
        report = await schema_versions.migrate(schema, with_note)
        assert (report.found, report.version, report.applied) == (
            CH_LATEST,
            CH_LATEST + 1,
            [CH_LATEST + 1],
        )
        again = await schema_versions.migrate(schema, with_note)
        assert again.applied == []
        rows = await run(
            "columns",
            "SELECT table FROM system.columns WHERE database = %(db)s AND name = 'note' "
            "ORDER BY table",
            {"db": db},
        )
    assert [str(r[0]) for r in rows] == ["events", "events_by_position"]
    with pytest.raises(SchemaMismatch, match=f"newer than this code's {CH_LATEST}"):
        await ClickHouseStorage.open(config)  # this code's MIGRATIONS end at CH_LATEST


async def test_sqlite_a_new_migration_commits_with_its_version_row(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    await (await SqliteStorage.open(path)).close()

    async def add_epoch(schema: SqlSchema) -> None:
        await schema.conn.execute(text("ALTER TABLE events ADD COLUMN epoch INTEGER DEFAULT 0"))

    with_epoch = (*SQLITE_MIGRATIONS, Migration(ES_LATEST + 1, "epoch column", add_epoch))
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            schema = SqlSchema(connection, description="test", marker="events", metadata=[])
            report = await schema_versions.migrate(schema, with_epoch)
        assert report.applied == [ES_LATEST + 1]
    finally:
        await engine.dispose()
    assert ("epoch", "INTEGER") in _columns(path)["events"]
    with sqlite3.connect(path) as db:
        versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations")]
    assert versions == [ES_LATEST, ES_LATEST + 1]  # a fresh file records its version once
