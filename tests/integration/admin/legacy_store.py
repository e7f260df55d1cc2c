"""A store as the code before issue 14 left it: payloads in clear JSON without a
version key (a ``user.password.changed`` of version 1 among them), email claims
holding the plaintext addresses, no key store. Two users: ``gone`` logged in
from a distinctive address and changed their email once; ``kept`` did nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.command.v1 import command_pb2_grpc as command_grpc

from cqrs_admin import clickhouse
from service_kit.passwords import PasswordHasher
from store_svc.engine import ClickHouseConfig, SqliteStorage
from store_svc.engine.model import Claim, PendingEvent, RecordedEvent
from tests.integration.admin.deployment import PASSWORD

__all__ = ["Legacy", "clickhouse_columns", "file_hits", "legacy_store"]

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

    async def assert_still_taken(self, commands: command_grpc.CommandServiceAsyncStub) -> None:
        """The addresses the old store holds cannot be registered again, in any case."""
        for email in (self.new_email.upper(), self.kept_email.title()):
            with pytest.raises(grpc.aio.AioRpcError) as taken:
                await commands.Register(
                    cmd.RegisterRequest(email=email, password=PASSWORD), timeout=20
                )
            assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS, taken.value

    async def write(self, folder: Path) -> None:
        storage = await SqliteStorage.open(folder / "events.sqlite3")
        try:
            await storage.write_batch(self.events)
        finally:
            await storage.close()


async def legacy_store() -> Legacy:
    hasher = PasswordHasher(4)
    try:
        return Legacy(await hasher.hash(PASSWORD))
    finally:
        hasher.close()


def file_hits(folder: Path, needles: list[str]) -> list[str]:
    """Which files under ``folder`` (raw bytes: databases, WAL, keys) hold a needle."""
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        hits += [f"{path.name}: {n}" for n in needles if n.encode() in raw]
    return hits


async def clickhouse_columns(config: ClickHouseConfig, expression: str) -> list[str]:
    """``expression`` over every row of both ClickHouse event tables, as stored (the
    raw text: no reader's decoding or deduplication in between)."""
    async with clickhouse.session(config) as run:
        rows = await run(
            "raw columns",
            f"SELECT {expression} FROM {config.database}.events UNION ALL "
            f"SELECT {expression} FROM {config.database}.events_by_position",
            None,
        )
    return [str(r[0]) for r in rows]
