"""The projector against a real store and a real read model: exactly once, no skips."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncConnection

from query_svc import writer
from query_svc.db import Database, Tables
from query_svc.projector import Projector
from query_svc.settings import QuerySettings
from query_svc.store_source import StoreSubscriptionSource
from store_svc import app as store_app
from tests.integration.query_svc.conftest import SERVICE_MD, start_store
from tests.integration.query_svc.feeder import Feeder
from tests.integration.query_svc.support import ListSource, assert_matches_store, dump
from tests.unit.query_svc.events import Log, new_id

pytestmark = pytest.mark.integration


@pytest.fixture
async def database(
    read_model_settings: Callable[..., QuerySettings],
) -> AsyncIterator[Database]:
    db = Database.from_settings(settings := read_model_settings())
    await db.ensure_schema(schema=settings.postgres.schema if db.backend == "postgres" else "")
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def source(store: store_app.StoreService) -> AsyncIterator[StoreSubscriptionSource]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as channel:
        yield StoreSubscriptionSource(channel=channel, metadata=SERVICE_MD, timeout=5)


async def test_killed_and_restarted_mid_stream_every_event_counts_once(
    database: Database, source: StoreSubscriptionSource, feeder: Feeder, password_hash: str
) -> None:
    rng = random.Random(7)
    writing = asyncio.create_task(
        feeder.populate(users=150, logins_per_user=12, password_hash=password_hash)
    )
    restarts = 0
    while not writing.done() or restarts < 5:
        projector = Projector(database=database, source=source, batch_max=rng.choice([1, 7, 500]))
        await projector.start()
        await asyncio.sleep(rng.uniform(0.0, 0.08))
        await projector.stop()  # cancels wherever it is, mid-transaction included
        restarts += 1
    await writing
    projector = Projector(database=database, source=source)
    await projector.start()
    try:
        assert await projector.wait_for(feeder.head, within=60)
    finally:
        await projector.stop()
    assert restarts >= 5
    await assert_matches_store(database, feeder)


async def test_redelivered_events_are_no_ops(database: Database) -> None:
    log, a, b = Log(), new_id(), new_id()
    events = [
        log.created(a, "a@example.com"),
        log.created(b, "b@example.com"),
        log.login(a),
        log.email(a, "a@example.com", "c@example.com"),
        log.email(b, "b@example.com", "a@example.com"),
        log.login(b),
    ]
    feed = ListSource(events, replay_all=True, end=True)
    projector = Projector(database=database, source=feed, backoff_initial=0.01)
    await projector.start()
    try:
        assert await projector.wait_for(6, within=10)
        first = await dump(database)
        while len(feed.connections) < 4:  # three more full redeliveries
            await asyncio.wait_for(feed.reconnected.wait(), 10)
            feed.reconnected.clear()
    finally:
        await projector.stop()
    assert await dump(database) == first
    assert len(first["login_histories"]) == 2
    assert sorted(r[1] for r in first["auth_projections"]) == ["a@example.com", "c@example.com"]


async def test_a_gap_is_never_skipped(database: Database) -> None:
    log, uid = Log(), new_id()
    events = [log.created(uid, "a@example.com"), log.login(uid), log.login(uid)]
    feed = ListSource([events[0], events[2]])  # position 2 is lost on the way
    projector = Projector(database=database, source=feed, backoff_initial=0.01)
    await projector.start()
    try:
        await asyncio.wait_for(feed.reconnected.wait(), 10)
        assert projector.applied_position == 1
        assert "gap" in projector.last_error
        assert feed.connections[-1] == 1  # it asks again from its checkpoint
        feed.items = events  # the feed heals
        feed.reconnected.clear()
        assert await projector.wait_for(3, within=10)
    finally:
        await projector.stop()
    rows = await dump(database)
    assert [r[0] for r in rows["login_histories"]] == [2, 3]


async def test_two_projectors_on_one_read_model_apply_each_event_once(
    database: Database, source: StoreSubscriptionSource, feeder: Feeder, password_hash: str
) -> None:
    # Half the history is there before they start: both catch up on it at once,
    # in batches of different sizes, so they keep committing over each other.
    await feeder.populate(users=15, logins_per_user=5, password_hash=password_hash)
    errors_before = _projector_errors()
    first = Projector(database=database, source=source, backoff_initial=0.01, batch_max=3)
    second = Projector(database=database, source=source, backoff_initial=0.01, batch_max=5)
    await first.start()
    await second.start()
    try:
        await feeder.populate(users=15, logins_per_user=5, password_hash=password_hash)
        assert await first.wait_for(feeder.head, within=60)
        assert await second.wait_for(feeder.head, within=60)
    finally:
        await first.stop()
        await second.stop()
    await assert_matches_store(database, feeder)
    # Each event was committed by exactly one of them, and the other one took
    # that commit as its own progress: no failure, no backoff, no resubscription.
    # (On SQLite, which serialises writers, one of them may never win.)
    assert first.events_applied + second.events_applied == feeder.head
    assert _projector_errors() == errors_before


def _projector_errors() -> float:
    return REGISTRY.get_sample_value("query_projector_errors_total") or 0.0


async def test_an_empty_store_starts_at_zero_and_follows_live(
    database: Database, source: StoreSubscriptionSource, feeder: Feeder, password_hash: str
) -> None:
    projector = Projector(database=database, source=source)
    await projector.start()
    try:
        assert projector.applied_position == 0
        _, position = await feeder.register("live@example.com", password_hash=password_hash)
        assert await projector.wait_for(position, within=10)
        assert not await projector.wait_for(position + 1, within=0.05)
    finally:
        await projector.stop()
    await assert_matches_store(database, feeder)


async def test_rows_and_checkpoint_commit_together(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the rows are written but before the checkpoint moves leaves no trace."""
    log, uid = Log(), new_id()
    events = [log.created(uid, "a@example.com"), log.login(uid), log.login(uid)]
    real = writer.move_checkpoint
    failures = 0

    async def flaky(conn: AsyncConnection, tables: Tables, *, expected: int, position: int) -> None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise ConnectionError("database went away")
        await real(conn, tables, expected=expected, position=position)

    monkeypatch.setattr(writer, "move_checkpoint", flaky)
    feed = ListSource(events)
    projector = Projector(database=database, source=feed, backoff_initial=0.01)
    await projector.start()
    try:
        assert await projector.wait_for(3, within=10)
    finally:
        await projector.stop()
    assert failures == 2
    rows = await dump(database)
    assert [r[0] for r in rows["login_histories"]] == [2, 3]
    assert rows["users"][0][8] == 2  # login_count
    assert len(feed.connections) == 3  # it resubscribed from its checkpoint after each failure


async def test_it_reconnects_when_the_store_comes_back(
    database: Database, tmp_path: Path, password_hash: str
) -> None:
    store = await start_store(tmp_path / "store")
    port = store.server.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        source = StoreSubscriptionSource(channel=channel, metadata=SERVICE_MD, timeout=5)
        projector = Projector(database=database, source=source, backoff_max=0.2)
        await projector.start()
        try:
            feeder = Feeder(pb_grpc.EventStoreServiceStub(channel), SERVICE_MD)
            _, first = await feeder.register("before@example.com", password_hash=password_hash)
            assert await projector.wait_for(first, within=10)
            await store.stop(grace=0)
            store = await start_store(tmp_path / "store", listen=f"127.0.0.1:{port}")
            # The channel reconnects on its own back-off; an append made before
            # it has would fail fast (UNAVAILABLE) instead of waiting.
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            _, second = await feeder.register("after@example.com", password_hash=password_hash)
            assert await projector.wait_for(second, within=20)
        finally:
            await projector.stop()
            await store.stop(grace=0)
    await assert_matches_store(database, feeder)


async def test_a_user_taking_an_address_released_in_the_same_batch_fits_the_unique_email(
    database: Database,
) -> None:
    """B y->fresh then A tmp->y in one batch, A's row first: the writer parks the movers.

    auth_projections.email is UNIQUE and checked row by row, so A's row,
    written first, would collide with B's old address; batches where no
    mover takes a released address skip the parking step.
    """
    log, a, b = Log(), new_id(), new_id()
    events = [
        # batch 1
        log.created(a, "x@example.com"),
        log.created(b, "y@example.com"),
        log.email(a, "x@example.com", "tmp@example.com"),
        # batch 2: A is seen first, so its row is written first
        log.login(a),
        log.email(b, "y@example.com", "fresh@example.com"),
        log.email(a, "tmp@example.com", "y@example.com"),
    ]
    feed = ListSource(events)
    projector = Projector(database=database, source=feed, batch_max=3)
    await projector.start()
    try:
        assert await projector.wait_for(len(events), within=10)
    finally:
        await projector.stop()
    assert projector.last_error == ""
    rows = await dump(database)
    emails = {row[0]: row[1] for row in rows["users"]}
    assert emails == {a: "y@example.com", b: "fresh@example.com"}
