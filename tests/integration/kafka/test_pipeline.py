"""store (ClickHouse) + relay -> Kafka -> query_svc (PostgreSQL, Kafka source): the read model
equals the fold of the store, across restarts and with records missing from the topic."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2_grpc as es_grpc
from sqlalchemy import select

from query_svc import app as query_app
from query_svc.db import Database
from query_svc.kafka_source import KAFKA_OFFSETS, KafkaEventSource
from query_svc.settings import QuerySettings
from store_svc import app as store_app
from tests.auth_support import SERVICE, TEST_ENV
from tests.integration.kafka.conftest import Kafka, StoreFactory, relay_env
from tests.integration.kafka.support import (
    assert_read_model_equals_store,
    store_truth,
    wait_until,
)
from tests.integration.query_svc.conftest import drop_schema, read_model_env
from tests.integration.query_svc.feeder import Feeder

pytestmark = pytest.mark.integration

QueryFactory = Callable[[], Awaitable[query_app.QueryService]]


@pytest.fixture
async def query_settings(
    tmp_path: Path, kafka: Kafka
) -> AsyncIterator[Callable[[store_app.StoreService], QuerySettings]]:
    """Settings of a query_svc on a fresh PostgreSQL schema, fed by the test's topic."""
    env = read_model_env("postgres", tmp_path / "query")
    built: list[QuerySettings] = []

    def build(store: store_app.StoreService) -> QuerySettings:
        settings = QuerySettings.from_env(
            {
                **env,
                **TEST_ENV,
                "STORE_GRPC_TARGET": f"127.0.0.1:{store.server.port}",
                "COMMAND_GRPC_TARGET": "127.0.0.1:9",  # nobody logs in here
                "QUERY_EVENT_SOURCE": "kafka",
                "KAFKA_BROKER": kafka.broker,
                "KAFKA_TOPIC": kafka.topic,
                "KAFKA_GROUP": f"group-{kafka.topic}",
                "QUERY_KAFKA_GAP_TIMEOUT_MS": "500",
                # The topic's personal fields open with the store's own key store.
                "PII_KEYS_FILE": str(store.time_travel.codec.keys.path),
            }
        )
        built.append(settings)
        return settings

    yield build
    if built:
        await drop_schema(built[0])


async def caught_up(query: query_app.QueryService, head: int) -> None:
    assert await query.projector.wait_for(head, within=30), (
        f"projector at {query.projector.applied_position}, store at {head}: "
        f"{query.projector.last_error}"
    )


async def check_equal(store: store_app.StoreService, query: query_app.QueryService) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as channel:
        truth = await store_truth(es_grpc.EventStoreServiceStub(channel), lambda: SERVICE)
    await caught_up(query, truth.head)
    await assert_read_model_equals_store(query.database, truth)


async def test_read_model_equals_the_store_across_a_query_restart(
    tmp_path: Path,
    kafka: Kafka,
    start_store: StoreFactory,
    query_settings: Callable[[store_app.StoreService], QuerySettings],
    password_hash: str,
) -> None:
    store = await start_store(relay_env("clickhouse", tmp_path / "store", kafka))
    settings = query_settings(store)
    query = await query_app.start(settings)
    try:
        assert isinstance(query.projector._source, KafkaEventSource)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as channel:
            feeder = Feeder(es_grpc.EventStoreServiceStub(channel), lambda: SERVICE)
            await feeder.populate(users=30, logins_per_user=5, password_hash=password_hash)
            await check_equal(store, query)
            await wait_until(
                lambda: saved_offsets(query.database, kafka.topic),
                within=10,
                what="saved partition offsets",
            )
            await query.stop(grace=1)

            # More events while query_svc is down; it resumes from its saved offsets.
            await feeder.populate(users=10, logins_per_user=5, password_hash=password_hash)
            query = await query_app.start(settings)
            await check_equal(store, query)
    finally:
        await query.stop(grace=1)
    db = Database.from_settings(settings)
    try:
        rows = await saved_offsets(db, kafka.topic)
    finally:
        await db.close()
    assert {row[0] for row in rows} == {0, 1, 2}
    assert all(row[2] <= feeder.head for row in rows)


async def saved_offsets(db: Database, topic: str) -> list[tuple[int, int, int]]:
    t = KAFKA_OFFSETS
    async with db.read() as conn:
        result = await conn.execute(
            select(t.c.partition, t.c.next_offset, t.c.position).where(t.c.topic == topic)
        )
        return [(int(p), int(o), int(pos)) for p, o, pos in result.all()]


async def test_events_missing_from_the_topic_are_read_from_the_store(
    tmp_path: Path,
    kafka: Kafka,
    start_store: StoreFactory,
    query_settings: Callable[[store_app.StoreService], QuerySettings],
    password_hash: str,
) -> None:
    # The first events never reach Kafka (as if retention had removed them).
    env = relay_env("sqlite", tmp_path / "store", kafka)
    silent = await start_store({**env, "STORE_RELAY": "off"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{silent.server.port}") as channel:
        feeder = Feeder(es_grpc.EventStoreServiceStub(channel), lambda: SERVICE)
        await feeder.populate(users=6, logins_per_user=3, password_hash=password_hash)
    await silent.stop(grace=1)
    missing = feeder.head
    (tmp_path / "store" / f"relay-{kafka.topic}.json").write_text(json.dumps({"position": missing}))

    store = await start_store(env)
    query = await query_app.start(query_settings(store))
    try:
        source = query.projector._source
        assert isinstance(source, KafkaEventSource)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as channel:
            feeder.stub = es_grpc.EventStoreServiceStub(channel)
            await feeder.populate(users=6, logins_per_user=3, password_hash=password_hash)
        await check_equal(store, query)
        assert source.filled_from_store == missing
    finally:
        await query.stop(grace=1)
