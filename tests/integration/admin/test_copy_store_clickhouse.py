"""``cqrs-admin copy-store --to-database`` on a ClickHouse store written in the format
before encryption (issue 14).

The fixture is the old store of ``legacy_store`` (plaintext payloads without a
version key, plaintext email claims) written into a fresh ClickHouse database
as the store writes it. The command, run as its own process in the
deployment's environment, copies it into another fresh database; then no
address is left in clear in any raw payload or claims column of the copy's
event tables, ids, positions, versions and times are the source's, the
verification finds nothing, and it names each difference of a tampered copy.
A source with a running writer, and a target that holds events, are refused.
Both databases are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cqrs_admin import clickhouse
from cqrs_admin.copy_clickhouse import clickhouse_places
from cqrs_admin.copy_store import verify_copy
from pii.settings import new_master_key
from store_svc.engine import ClickHouseConfig, ClickHouseStorage
from tests.integration.admin.deployment import cqrs_admin
from tests.integration.admin.legacy_store import clickhouse_columns, legacy_store

pytestmark = pytest.mark.integration

_RAW = "concat(payload, claims, releases)"  # every column that could hold an address


@pytest.fixture
async def databases() -> AsyncIterator[tuple[str, str]]:
    if not os.environ.get("CLICKHOUSE_HOST"):
        pytest.skip('CLICKHOUSE_HOST is not set (eval "$(scripts/infra.sh env)")')
    run_id = uuid.uuid4().hex[:10]
    names = (f"copy_from_{run_id}", f"copy_to_{run_id}")
    yield names
    async with clickhouse.session(ClickHouseConfig.from_env()) as run:
        for name in names:
            await run("drop", f"DROP DATABASE IF EXISTS {name}", None)


async def _mutate(config: ClickHouseConfig, *statements: str) -> None:
    """Runs ALTER ... UPDATE/DELETE statements and waits for them (18.16 has no
    ``mutations_sync``)."""
    async with clickhouse.session(config) as run:
        for statement in statements:
            await run("tamper", statement, None)
        deadline = time.monotonic() + 60
        while (
            await run(
                "wait",
                "SELECT count() FROM system.mutations WHERE database = %(db)s AND is_done = 0",
                {"db": config.database},
            )
        )[0][0]:
            assert time.monotonic() < deadline, "the mutations did not finish"
            await asyncio.sleep(0.2)


async def test_copy_encrypts_a_plaintext_clickhouse_store_and_verifies_it(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    source_db, target_db = databases
    legacy = await legacy_store()
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("CLICKHOUSE_")},
        "CLICKHOUSE_DB": source_db,
        "EVENT_STORE_BACKEND": "clickhouse",
        "QUERY_DB_BACKEND": "sqlite",
        "DATA_DIR": str(tmp_path / "old"),  # no key store: the plaintext format
        "PII_MASTER_KEY": new_master_key(),
    }
    source = ClickHouseConfig.from_env(env)
    keys = tmp_path / "new" / "pii-keys.sqlite3"
    args = ("copy-store", "--to-database", target_db, "--to-keys", str(keys))
    async with clickhouse.writing(source) as storage:
        await storage.write_batch(legacy.events)
        busy = await cqrs_admin(env, *args)  # a writer is running: refused
        assert busy.code == 1 and "holds the writer lease" in busy.err, busy.err
    everyone = [*legacy.gone_needles, legacy.kept_email]
    assert any(legacy.client_address in raw for raw in await clickhouse_columns(source, _RAW))

    copied = await cqrs_admin(env, *args)
    assert copied.code == 0, copied.err
    assert "5/5 events copied" in copied.out and "copied and verified 5 events" in copied.out
    assert "2 streams" in copied.out and "4 plaintext claims" in copied.out, copied.out
    target = ClickHouseConfig.from_env({**env, "CLICKHOUSE_DB": target_db})
    raw = await clickhouse_columns(target, _RAW)
    assert len(raw) == 10  # 5 events in each table
    assert [(n, r) for r in raw for n in everyone if n in r] == []

    reader = await ClickHouseStorage.open(target)
    try:
        copy = await reader.read_log(after_position=0, limit=100)
    finally:
        await reader.close()
    assert [(e.record.position, e.record.event_id, e.record.version, e.record.timestamp)
            for e in copy] == [
        (p.record.position, p.record.event_id, p.record.version, p.record.timestamp)
        for p in legacy.events
    ]  # fmt: skip

    again = await cqrs_admin(env, *args)
    assert again.code == 1 and "exists: copy into a new database" in again.err, again.err

    assert await verify_copy(*clickhouse_places(env, target_db, keys)) == []
    await _mutate(
        target,
        f"ALTER TABLE {target_db}.events_by_position UPDATE "
        'payload = \'{"client_address":"x"}\' WHERE position = 3',
        f"ALTER TABLE {target_db}.events DELETE WHERE position = 5",
        f"ALTER TABLE {target_db}.events_by_position DELETE WHERE position = 5",
    )
    found = await verify_copy(*clickhouse_places(env, target_db, keys))
    assert any("position 3: the payload does not open equal" in f for f in found), found
    assert any("stream versions differ" in f for f in found), found
    assert any("fewer events" in f for f in found), found
