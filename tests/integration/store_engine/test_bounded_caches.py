"""Heads and claims in bounded caches over keyed lookups answer exactly as if all were
in memory: with caches of one entry, every decision depends on storage lookups, after a
reopen too, and a write whose outcome was unknown is settled by itself."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from store_svc.engine import (
    AppendResult,
    Claim,
    ClaimTaken,
    ClickHouseStorage,
    EventStore,
    ExpectedVersion,
    SqliteStorage,
    Storage,
    StorageUnavailable,
    WrongExpectedVersion,
)
from store_svc.engine.clickhouse_storage import MIGRATIONS as CLICKHOUSE_MIGRATIONS
from store_svc.engine.clickhouse_storage import ClickHouseSchema
from store_svc.engine.sqlite_storage import MIGRATIONS as SQLITE_MIGRATIONS
from tests.integration.store_engine.support import T0, FaultyStorage, Harness, new_event, uid

pytestmark = pytest.mark.integration

# The migrations that add the claims table (the latest of each, for now).
SQLITE_CLAIMS = next(m.version for m in SQLITE_MIGRATIONS if m.summary.startswith("claims:"))
CLICKHOUSE_CLAIMS = next(
    m.version for m in CLICKHOUSE_MIGRATIONS if m.summary.startswith("claims:")
)
TINY: dict[str, Any] = {"head_cache_size": 1, "claim_cache_size": 1}


def address(name: str) -> Claim:
    return Claim("email", f"{name}@example.com")


async def change(
    store: EventStore,
    user: str,
    version: int,
    *,
    claims: Sequence[Claim] = (),
    releases: Sequence[Claim] = (),
) -> AppendResult:
    """One event at ``version`` + 1 of ``user``, taking and releasing claims."""
    event = new_event(claims=claims, releases=releases)
    return await store.append(user, "user", ExpectedVersion.exact(version), [event], now=T0)


async def test_tiny_caches_decide_like_full_ones(harness: Harness) -> None:
    tag = uid()
    users = [f"{tag}-u{i}" for i in range(6)]
    store = await harness.open(**TINY)
    for user in users:
        await change(store, user, 0, claims=[address(user)])
    # Every head and claim below was evicted by the later ones.
    for user, other in itertools.pairwise(users):
        with pytest.raises(ClaimTaken):
            await change(store, user, 1, claims=[address(other)])
        with pytest.raises(WrongExpectedVersion):
            await change(store, user, 0)
    # A move within one append: release then take.
    moved = await change(
        store, users[0], 1, releases=[address(users[0])], claims=[address(f"{tag}-moved")]
    )
    assert moved.version == 2
    assert [await store.stream_version(user) for user in users] == [2, 1, 1, 1, 1, 1]
    await store.close()

    reopened = await harness.open(**TINY)
    # The freed address can be taken by another user; the new one cannot.
    await change(reopened, users[1], 1, releases=[address(users[1])], claims=[address(users[0])])
    with pytest.raises(ClaimTaken):
        await change(reopened, users[2], 1, claims=[address(f"{tag}-moved")])
    # A stray release (not the holder) frees nothing.
    await change(reopened, users[3], 1, releases=[address(users[4])])
    with pytest.raises(ClaimTaken):
        await change(reopened, users[5], 1, claims=[address(users[4])])
    assert await reopened.stream_version(users[1]) == 2


async def test_take_then_release_in_one_batch(harness: Harness) -> None:
    """Claim changes of one batch are applied in order, also in storage's claim table."""
    tag = uid()
    store = await harness.open(batch_max_delay=0.05, **TINY)
    mine = address(f"{tag}-x")
    first, second = f"{tag}-a", f"{tag}-b"
    await asyncio.gather(
        store.append(first, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[mine])], now=T0),
        store.append(first, "user", ExpectedVersion.exact(1), [new_event(releases=[mine])], now=T0),
    )
    await store.close()
    reopened = await harness.open(**TINY)
    taken = await reopened.append(
        second, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[mine])], now=T0
    )
    assert taken.version == 1


async def test_an_unknown_outcome_is_settled_by_its_batch(harness: Harness) -> None:
    tag = uid()
    faulty = FaultyStorage(harness.storage())
    store = await harness.open(faulty, **TINY)
    user, rival = f"{tag}-a", f"{tag}-b"
    events = [new_event("user.registered", claims=[address(user)])]
    base = store.head_position()
    faulty.fail_after = 1  # stored, then the call fails: outcome unknown to the engine
    with pytest.raises(StorageUnavailable):
        await store.append(user, "user", ExpectedVersion.NO_STREAM, events, now=T0)
    lookups = faulty.lookup_calls
    retried = await store.append(user, "user", ExpectedVersion.NO_STREAM, events, now=T0)
    assert retried == AppendResult(user, 1, (base + 1,), idempotent=True)
    with pytest.raises(ClaimTaken):
        await store.append(
            rival, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[address(user)])], now=T0
        )
    # Settling applied the batch's head and claim: the retry and the rival's claim
    # needed one lookup (the rival's head), not a reload of everything.
    assert faulty.lookup_calls - lookups == 1

    faulty.fail_before = 1  # nothing stored
    with pytest.raises(StorageUnavailable):
        await store.append(
            rival, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[address(rival)])], now=T0
        )
    assert store.head_position() == base + 1
    assert await store.stream_version(rival) == 0


async def test_migrate_fills_the_claims_table_from_the_events(harness: Harness) -> None:
    """A store from before the claims table (SQLite 4, ClickHouse 5) gets it filled by
    ``cqrs-admin migrate`` from the claim changes on the event rows."""
    tag = uid()
    held, moved, freed = f"{tag}-held", f"{tag}-moved", f"{tag}-freed"
    store = await harness.open()
    for user in (held, moved):
        await store.append(
            user, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[address(user)])], now=T0
        )
    await store.append(
        moved,
        "user",
        ExpectedVersion.exact(1),
        [new_event(releases=[address(moved)], claims=[address(freed)])],
        now=T0,
    )
    await store.append(
        moved, "user", ExpectedVersion.exact(2), [new_event(releases=[address(freed)])], now=T0
    )
    await store.close()
    # As the store was before the claims table: its version row and table gone.
    if harness.backend.name == "sqlite":
        path = harness.storages[0].path  # type: ignore[attr-defined]
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE claims")
            conn.execute(  # a new file records only its version: make it the one before
                f"UPDATE schema_migrations SET version = {SQLITE_CLAIMS - 1} "
                f"WHERE version = {SQLITE_CLAIMS}"
            )
        migrating: Storage = SqliteStorage(path, migrate=True)
    else:
        old = harness.storages[0]
        assert isinstance(old, ClickHouseStorage)
        config = old.config
        scratch = await ClickHouseStorage.open(config)
        for table in ("claims", "schema_migrations"):
            await scratch._execute("test: drop", f"DROP TABLE {config.database}.{table}")
        schema = ClickHouseSchema(config, scratch._query)
        for migration in CLICKHOUSE_MIGRATIONS:
            if migration.version != CLICKHOUSE_CLAIMS:
                await schema.record(migration.version, migration.summary)
        await scratch.close()
        migrating = ClickHouseStorage(config, migrate=True)
    harness.storages.append(migrating)
    store = await harness.open(migrating, **TINY)
    rival = f"{tag}-rival"
    with pytest.raises(ClaimTaken):
        await store.append(
            rival, "user", ExpectedVersion.NO_STREAM, [new_event(claims=[address(held)])], now=T0
        )
    for free in (moved, freed):
        taken = await store.append(
            f"{rival}-{free}",
            "user",
            ExpectedVersion.NO_STREAM,
            [new_event(claims=[address(free)])],
            now=T0,
        )
        assert taken.version == 1
