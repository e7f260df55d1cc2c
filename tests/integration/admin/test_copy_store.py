"""``cqrs-admin copy-store`` on a store written in the format before encryption (issue 14).

The fixture is an event store as the code before issue 14 left it: payloads
in clear JSON without a version key (a ``user.password.changed`` of version
1 among them), email claims holding the plaintext addresses, no key store.
The command, run as its own process, copies it into a new data folder; then
the copy holds no address in clear (not in payloads, not in claims), the
services start on it, an address of the old store (in any case) cannot be
registered again (409 / ALREADY_EXISTS), and after one user's erasure no
byte of the copy's folder (SQLite files with their WAL, key store) holds
that user's addresses while the other user reads, logs in and is intact.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.query.v1 import query_pb2 as qpb

from cqrs_admin.copy_store import verify_copy
from service_kit.passwords import PasswordHasher
from store_svc.engine import SqliteStorage
from store_svc.engine.model import Claim, PendingEvent, RecordedEvent
from tests import auth_support
from tests.integration.admin.deployment import PASSWORD, cqrs_admin, running

pytestmark = pytest.mark.integration

EMAIL = "user.email"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _event(
    n: int,
    user: str,
    version: int,
    event_type: str,
    payload: dict[str, str],
    *,
    claims: tuple[str, ...] = (),
    releases: tuple[str, ...] = (),
) -> PendingEvent:
    record = RecordedEvent(
        n,
        str(uuid.uuid4()),
        user,
        "user",
        version,
        event_type,
        T0 + timedelta(minutes=n),
        json.dumps(payload).encode(),  # today's format: clear JSON, no version key
        f"corr-{n}",
        "",
    )
    return PendingEvent(
        record,
        tuple(Claim(EMAIL, c) for c in claims),
        tuple(Claim(EMAIL, r) for r in releases),
    )


class Legacy:
    """Two users' streams in the plaintext format; ``gone`` changed address once."""

    def __init__(self, hashed: str) -> None:
        run = uuid.uuid4().hex[:8]
        self.gone, self.kept = str(uuid.uuid4()), str(uuid.uuid4())
        self.old_email = f"legacy-old-{run}@example.com"
        self.new_email = f"legacy-new-{run}@example.com"
        self.kept_email = f"legacy-kept-{run}@example.com"
        self.client_address = "10.77.41.97"
        self.events = [
            _event(1, self.gone, 1, "user.created",
                   {"email": self.old_email, "password_hash": hashed, "role": "user"},
                   claims=(self.old_email,)),
            _event(2, self.kept, 1, "user.created",
                   {"email": self.kept_email, "password_hash": hashed, "role": "user"},
                   claims=(self.kept_email,)),
            _event(3, self.gone, 2, "user.login.recorded",
                   {"client_address": self.client_address}),
            _event(4, self.gone, 3, "user.email.changed",
                   {"old_email": self.old_email, "new_email": self.new_email},
                   claims=(self.new_email,), releases=(self.old_email,)),
            _event(5, self.gone, 4, "user.password.changed", {"password_hash": hashed}),
        ]  # fmt: skip

    @property
    def gone_needles(self) -> list[str]:
        return [self.old_email, self.new_email, self.client_address]

    async def write(self, folder: Path) -> None:
        storage = await SqliteStorage.open(folder / "events.sqlite3")
        try:
            await storage.write_batch(self.events)
        finally:
            await storage.close()


async def _legacy() -> Legacy:
    hasher = PasswordHasher(4)
    try:
        return Legacy(await hasher.hash(PASSWORD))
    finally:
        hasher.close()


def _hits(folder: Path, needles: list[str]) -> list[str]:
    """Which files under ``folder`` (raw bytes: databases, WAL, keys) hold a needle."""
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        hits += [f"{path.name}: {n}" for n in needles if n.encode() in raw]
    return hits


async def test_copy_encrypts_an_old_store_and_erasure_then_leaves_no_trace(
    tmp_path: Path,
) -> None:
    legacy = await _legacy()
    old, new = tmp_path / "old", tmp_path / "new"
    await legacy.write(old)
    assert _hits(old, [legacy.old_email])  # the fixture does hold it in clear

    copied = await cqrs_admin(
        {"DATA_DIR": str(new)}, "copy-store", "--from", str(old), "--to", str(new)
    )
    assert copied.code == 0, copied.err
    assert "5/5 events copied" in copied.out and "copied and verified 5 events" in copied.out
    assert "2 streams" in copied.out and "4 plaintext claims" in copied.out, copied.out
    everyone = [*legacy.gone_needles, legacy.kept_email]
    assert _hits(new, everyone) == []  # payloads sealed, claims digested
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
        for email in (legacy.new_email.upper(), legacy.kept_email.title()):
            with pytest.raises(grpc.aio.AioRpcError) as taken:
                await system.commands.Register(
                    cmd.RegisterRequest(email=email, password=PASSWORD), timeout=20
                )
            assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS, taken.value

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
        hits = _hits(new, legacy.gone_needles)  # the running system's files, WAL included
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
    hits = _hits(new, [legacy.old_email, legacy.client_address])  # stopped: nothing came back
    assert hits == [], hits


async def test_verification_names_a_copy_that_differs(tmp_path: Path) -> None:
    legacy = await _legacy()
    old, new = tmp_path / "old", tmp_path / "new"
    await legacy.write(old)
    copied = await cqrs_admin({}, "copy-store", "--from", str(old), "--to", str(new))
    assert copied.code == 0, copied.err
    assert verify_copy(old, new, {}) == []
    with sqlite3.connect(new / "events.sqlite3") as conn:
        conn.execute(
            "UPDATE events SET payload = ? WHERE position = 3", (b'{"client_address":"x"}',)
        )
        conn.execute("DELETE FROM events WHERE position = 5")
    found = verify_copy(old, new, {})
    assert any("position 3: the payload does not open equal" in f for f in found), found
    assert any("stream versions differ" in f for f in found), found
    assert any("fewer events" in f for f in found), found
