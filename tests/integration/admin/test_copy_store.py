"""``cqrs-admin copy-store`` on a store written in the format before encryption (issue 14).

The fixture is an event store as the code before issue 14 left it
(``legacy_store``). The command, run as its own process, copies it into a new
data folder; then the copy holds no address in clear (not in payloads, not in claims), the
services start on it, an address of the old store (in any case) cannot be
registered again (409 / ALREADY_EXISTS), and after one user's erasure no
byte of the copy's folder (SQLite files with their WAL, key store) holds
that user's addresses while the other user reads, logs in and is intact.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.query.v1 import query_pb2 as qpb

from cqrs_admin.copy_sqlite import sqlite_places
from cqrs_admin.copy_store import verify_copy
from tests import auth_support
from tests.integration.admin.deployment import PASSWORD, cqrs_admin, running
from tests.integration.admin.legacy_store import file_hits, legacy_store

pytestmark = pytest.mark.integration


async def test_copy_encrypts_an_old_store_and_erasure_then_leaves_no_trace(
    tmp_path: Path,
) -> None:
    legacy = await legacy_store()
    old, new = tmp_path / "old", tmp_path / "new"
    await legacy.write(old)
    assert file_hits(old, [legacy.old_email])  # the fixture does hold it in clear

    copied = await cqrs_admin(
        {"DATA_DIR": str(new)}, "copy-store", "--from", str(old), "--to", str(new)
    )
    assert copied.code == 0, copied.err
    assert "5/5 events copied" in copied.out and "copied and verified 5 events" in copied.out
    assert "2 streams" in copied.out and "4 plaintext claims" in copied.out, copied.out
    everyone = [*legacy.gone_needles, legacy.kept_email]
    assert file_hits(new, everyone) == []  # payloads sealed, claims digested
    again = await cqrs_admin({}, "copy-store", "--from", str(old), "--to", str(new))
    assert again.code == 1 and "exists" in again.err, again.err

    env = {"DATA_DIR": str(new), "EVENT_STORE_BACKEND": "sqlite"}
    async with running(env) as system:
        store = system.store.store
        events = await store.read_all(after_position=0, limit=100)
        assert [(e.position, e.event_id, e.version, e.timestamp) for e in events] == [
            (p.record.position, p.record.event_id, p.record.version, p.record.timestamp)
            for p in legacy.events
        ]
        # Claims came across as digests: the old addresses are still taken, in any case.
        await legacy.assert_still_taken(system.commands)

        erased = await system.commands.EraseUser(
            cmd.EraseUserRequest(id=legacy.gone), metadata=auth_support.ADMIN, timeout=20
        )
        deadline = time.monotonic() + 60
        while system.query.projector.applied_position < store.head_position():
            assert time.monotonic() < deadline, "the read model did not catch up"
            await asyncio.sleep(0.1)
        gone = await system.queries.GetUser(
            qpb.GetUserRequest(id=legacy.gone), metadata=auth_support.ADMIN, timeout=20
        )
        assert gone.user.email in {"[ERASED]", ""}, gone.user
        hits = file_hits(new, legacy.gone_needles)  # the running system's files, WAL included
        assert hits == [], hits
        kept = await system.queries.GetUser(
            qpb.GetUserRequest(id=legacy.kept), metadata=auth_support.ADMIN, timeout=20
        )
        assert kept.user.email == legacy.kept_email
        login = await system.queries.Login(
            qpb.LoginRequest(email=legacy.kept_email, password=PASSWORD), timeout=20
        )
        assert login.token
        # The erasure released the claim: the address is free again.
        reused = await system.commands.Register(
            cmd.RegisterRequest(email=legacy.new_email, password=PASSWORD), timeout=20
        )
        assert reused.id != legacy.gone and erased.version == 5
    hits = file_hits(new, [legacy.old_email, legacy.client_address])  # stopped: still none
    assert hits == [], hits


async def test_verification_names_a_copy_that_differs(tmp_path: Path) -> None:
    legacy = await legacy_store()
    old, new = tmp_path / "old", tmp_path / "new"
    await legacy.write(old)
    copied = await cqrs_admin({}, "copy-store", "--from", str(old), "--to", str(new))
    assert copied.code == 0, copied.err
    assert await verify_copy(*sqlite_places(old, new, {})) == []
    with sqlite3.connect(new / "events.sqlite3") as conn:
        conn.execute(
            "UPDATE events SET payload = ? WHERE position = 3", (b'{"client_address":"x"}',)
        )
        conn.execute("DELETE FROM events WHERE position = 5")
    found = await verify_copy(*sqlite_places(old, new, {}))
    assert any("position 3: the payload does not open equal" in f for f in found), found
    assert any("stream versions differ" in f for f in found), found
    assert any("fewer events" in f for f in found), found
