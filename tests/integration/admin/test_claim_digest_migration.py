"""SQLite event store migration 3, in place: an old file's plaintext email claims
become keyed digests (issue 14).

The old file (``legacy_store``, at schema version 2 as the release before left
it) holds its claims as addresses: new code would let the same address be
registered twice, and the address would stay on disk in the claims. store_svc
refuses the file until ``cqrs-admin migrate`` (run as its own process) has
rewritten them; then no claim holds an address (raw bytes of the file and
its WAL), every address still held is taken in any case, and the address the
email change released is free.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cqrs.command.v1 import command_pb2 as cmd

from service_kit.schema_versions import SchemaMismatch
from store_svc.engine import SqliteStorage
from store_svc.engine.sqlite_storage import MIGRATIONS
from tests.integration.admin.deployment import PASSWORD, cqrs_admin, running
from tests.integration.admin.legacy_store import file_hits, legacy_store

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
    assert f"migrated from version {DIGESTS - 1} to {DIGESTS}" in done.out, done.out
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
