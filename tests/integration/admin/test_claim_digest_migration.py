"""Event store migration, in place: an old store's plaintext email claims become
keyed digests (issue 14): SQLite migration 3, ClickHouse migration 4.

The old file (``legacy_store``, at schema version 2 as the release before left
it) holds its claims as addresses: new code would let the same address be
registered twice, and the address would stay on disk in the claims. store_svc
refuses the file until ``cqrs-admin migrate`` (run as its own process) has
rewritten them; then no claim holds an address (raw bytes of the file and
its WAL), every address still held is taken in any case, and the address the
email change released is free. On ClickHouse the same, read from both event
tables (old parts are the server's to drop later).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cqrs.command.v1 import command_pb2 as cmd

from cqrs_admin import clickhouse
from service_kit.schema_versions import SchemaMismatch
from store_svc.engine import ClickHouseConfig, ClickHouseStorage, SqliteStorage
from store_svc.engine.clickhouse_storage import MIGRATIONS as CLICKHOUSE_MIGRATIONS
from store_svc.engine.clickhouse_storage import ClickHouseSchema
from store_svc.engine.sqlite_storage import MIGRATIONS
from tests.integration.admin.deployment import PASSWORD, cqrs_admin, running
from tests.integration.admin.legacy_store import clickhouse_columns, file_hits, legacy_store

pytestmark = pytest.mark.integration

DIGESTS = MIGRATIONS[2].version  # 3


def _claim_text(email: str) -> str:
    """How a plaintext claim on ``email`` is stored in the claims columns."""
    return f'"user.email","{email}"'


async def test_migrate_turns_plaintext_claims_into_digests(tmp_path: Path) -> None:
    legacy = await legacy_store()
    data = tmp_path / "data"
    await legacy.write(data)
    events = data / "events.sqlite3"
    with sqlite3.connect(events) as db:  # the release before left version 2
        db.execute(f"UPDATE schema_migrations SET version = {DIGESTS - 1}")
    claims = [_claim_text(e) for e in (legacy.old_email, legacy.new_email, legacy.kept_email)]
    assert len(file_hits(data, claims)) == 3  # the fixture holds them in clear

    with pytest.raises(SchemaMismatch, match="run `cqrs-admin migrate`"):
        await SqliteStorage.open(events)
    env = {"DATA_DIR": str(data), "EVENT_STORE_BACKEND": "sqlite", "QUERY_DB_BACKEND": "sqlite"}
    done = await cqrs_admin(env, "migrate")
    assert done.code == 0, done.err
    # The digests, and every migration after them (the claims table fills from them).
    assert f"migrated from version {DIGESTS - 1} to {MIGRATIONS[-1].version}" in done.out, done.out
    hits = file_hits(data, claims)  # the file and its WAL, old pages included
    assert hits == [], hits
    with sqlite3.connect(events) as db:
        stored = [r[0] + r[1] for r in db.execute("SELECT claims, releases FROM events")]
    assert not any("@" in text for text in stored), stored
    assert sum(text.count("user.email") for text in stored) == 4  # 3 taken, 1 released

    again = await cqrs_admin(env, "migrate")
    assert again.code == 0 and "nothing to do" in again.out, again.out

    async with running(env) as system:
        await legacy.assert_still_taken(system.commands)
        freed = await system.commands.Register(
            cmd.RegisterRequest(email=legacy.old_email, password=PASSWORD), timeout=20
        )
        assert freed.id not in {legacy.gone, legacy.kept}


async def test_migrate_refuses_plaintext_claims_without_the_claim_key(tmp_path: Path) -> None:
    legacy = await legacy_store()
    await legacy.write(tmp_path)
    events = tmp_path / "events.sqlite3"
    with sqlite3.connect(events) as db:
        db.execute(f"UPDATE schema_migrations SET version = {DIGESTS - 1}")
    with pytest.raises(SchemaMismatch, match="holds claims in clear"):
        await SqliteStorage.open(events, migrate=True)  # no claim_digest given
    with sqlite3.connect(events) as db:  # rolled back: still version 2, claims untouched
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 2
    assert file_hits(tmp_path, [_claim_text(legacy.kept_email)])


# --- ClickHouse: migration 4 ----------------------------------------------------------


@pytest.fixture
async def clickhouse_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip('CLICKHOUSE_HOST is not set (eval "$(scripts/infra.sh env)")')
    db = f"claims_{uuid.uuid4().hex[:10]}"
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("CLICKHOUSE_")},
        "CLICKHOUSE_DB": db,
        "EVENT_STORE_BACKEND": "clickhouse",
        "QUERY_DB_BACKEND": "sqlite",
        "DATA_DIR": str(tmp_path / "data"),
    }
    yield env
    async with clickhouse.session(ClickHouseConfig.from_env(env)) as run:
        await run("drop", f"DROP DATABASE IF EXISTS {db}", None)


async def _stored_claims(config: ClickHouseConfig) -> list[str]:
    return await clickhouse_columns(config, "concat(claims, releases)")


async def test_clickhouse_migrate_turns_plaintext_claims_into_digests(
    clickhouse_env: dict[str, str],
) -> None:
    legacy = await legacy_store()
    config = ClickHouseConfig.from_env(clickhouse_env)
    storage = await ClickHouseStorage.open(config)
    try:
        await storage.acquire_writer_lock()
        await storage.load_state()
        await storage.write_batch(legacy.events)
    finally:
        await storage.close()
    latest = CLICKHOUSE_MIGRATIONS[-1].version
    digests = next(m.version for m in CLICKHOUSE_MIGRATIONS if "keyed digests" in m.summary)
    async with clickhouse.session(config) as run:  # what the release before left
        await run("drop", f"DROP TABLE {config.database}.schema_migrations", None)
        # ... which had no claims table yet (a later migration makes and fills it).
        await run("drop", f"DROP TABLE {config.database}.claims", None)
        await ClickHouseSchema(config, run).record(digests - 1, "before claim digests")
    assert sum("@" in text for text in await _stored_claims(config)) == 6  # 3 rows, 2 tables

    done = await cqrs_admin(clickhouse_env, "migrate")
    assert done.code == 0, done.err
    assert f"migrated from version {digests - 1} to {latest}" in done.out, done.out
    stored = await _stored_claims(config)
    assert not any("@" in text for text in stored), stored
    assert sum(text.count("user.email") for text in stored) == 8  # 4 claims, 2 tables

    async with running(clickhouse_env) as system:
        await legacy.assert_still_taken(system.commands)
        freed = await system.commands.Register(
            cmd.RegisterRequest(email=legacy.old_email, password=PASSWORD), timeout=20
        )
        assert freed.id not in {legacy.gone, legacy.kept}
