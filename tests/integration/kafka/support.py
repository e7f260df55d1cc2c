"""Helpers of the Kafka and fault tests: topics, reading them, read model vs store.

Every test gets its own topic (3 partitions, like the infra's ``user-events``),
deleted afterwards, so that tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cqrs.eventstore.v1 import event_store_pb2 as es
from cqrs.eventstore.v1 import event_store_pb2_grpc as es_grpc
from google.protobuf import json_format
from sqlalchemy import select

import domain
from query_svc.db import LIVE, Database, read_checkpoint
from service_kit.timeconv import to_datetime

PARTITIONS = 3
_ADMIN_SECONDS = 60.0  # one admin call (start, create, delete): far above a healthy broker's
MetadataFn = Callable[[], list[tuple[str, str]]]


def kafka_broker() -> str:
    """The test Kafka (``eval "$(scripts/infra.sh env)"``); skips the test when unset."""
    broker = os.environ.get("KAFKA_BROKER", "")
    if not broker:
        pytest.skip('KAFKA_BROKER is not set (eval "$(scripts/infra.sh env)")')
    return broker


@asynccontextmanager
async def fresh_topic(broker: str, *, partitions: int = PARTITIONS) -> AsyncIterator[str]:
    """A new topic for one test, deleted afterwards (best effort)."""
    name = f"test-events-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    # Bounded: aiokafka's admin client retries its bootstrap without end.
    await asyncio.wait_for(admin.start(), _ADMIN_SECONDS)
    try:
        await asyncio.wait_for(admin.create_topics([NewTopic(name, partitions, 1)]), _ADMIN_SECONDS)
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker)
        try:
            await asyncio.wait_for(admin.start(), _ADMIN_SECONDS)
            await asyncio.wait_for(admin.delete_topics([name]), _ADMIN_SECONDS)
        except Exception:  # Kafka may be down after a failed fault test
            pass
        finally:
            await admin.close()


@dataclass(frozen=True, slots=True)
class Published:
    """One record of the topic, decoded."""

    partition: int
    offset: int
    key: bytes
    headers: dict[str, bytes]
    event: es.Event


async def read_topic(broker: str, topic: str, *, within: float = 30.0) -> list[Published]:
    """Every record the topic holds now (up to each partition's end offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await consumer._client._wait_on_metadata(topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Published] = []
        deadline = time.monotonic() + within
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "topic not read to its end in time"
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    out.append(
                        Published(
                            partition=tp.partition,
                            offset=r.offset,
                            key=r.key,
                            headers=dict(r.headers),
                            event=es.Event.FromString(r.value),
                        )
                    )
        return out
    finally:
        await consumer.stop()


async def wait_until(
    check: Callable[[], Any], *, within: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """Polls ``check`` (sync or async) until it is truthy; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


# -- the store's truth ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreTruth:
    """Every user's state folded from the store, and where each event is.

    ``events``: position -> (aggregate id, version, event type).
    """

    head: int
    states: dict[str, domain.UserState]
    logins: dict[str, list[int]]
    events: dict[int, tuple[str, int, str]]

    def counts(self) -> dict[tuple[str, str], int]:
        """(aggregate id, event type) -> number of such events."""
        out: dict[tuple[str, str], int] = {}
        for aggregate_id, _, event_type in self.events.values():
            key = (aggregate_id, event_type)
            out[key] = out.get(key, 0) + 1
        return out


async def store_truth(stub: es_grpc.EventStoreServiceAsyncStub, metadata: MetadataFn) -> StoreTruth:
    """Folds every aggregate of the store from LoadAggregate (unredacted, service-only)."""
    head = int(
        (await stub.CountEvents(es.CountEventsRequest(), metadata=metadata(), timeout=10)).count
    )
    ids: set[str] = set()
    located: dict[int, tuple[str, int, str]] = {}
    after = 0
    while True:
        page = await stub.ListEvents(
            es.ListEventsRequest(after_position=after, limit=1000), metadata=metadata(), timeout=10
        )
        ids.update(e.aggregate_id for e in page.events)
        located.update({e.position: (e.aggregate_id, e.version, e.event_type) for e in page.events})
        if not page.next_after_position:
            break
        after = page.next_after_position
    states: dict[str, domain.UserState] = {}
    logins: dict[str, list[int]] = {}
    for user_id in sorted(ids):
        loaded = await stub.LoadAggregate(
            es.LoadAggregateRequest(aggregate_id=user_id), metadata=metadata(), timeout=10
        )
        state = (
            domain.state_from_dict(json.loads(loaded.snapshot_state))
            if loaded.snapshot_state
            else None
        )
        events = [
            domain.event_from_payload(
                e.event_type,
                json_format.MessageToDict(e.payload),
                aggregate_id=e.aggregate_id,
                version=e.version,
                occurred_at=to_datetime(e.timestamp),
            )
            for e in loaded.events
        ]
        folded = domain.fold(events, state)
        assert folded is not None
        states[user_id] = folded
        logins[user_id] = [
            e.position for e in loaded.events if e.event_type == "user.login.recorded"
        ]
    assert sorted(located) == list(range(1, head + 1)), "positions are gapless"
    return StoreTruth(head=head, states=states, logins=logins, events=located)


async def assert_read_model_equals_store(db: Database, truth: StoreTruth) -> None:
    """The read model holds exactly the store's users, versions and logins, once each."""
    users, auth, logins = LIVE.users, LIVE.auth, LIVE.logins
    async with db.read() as conn:
        assert await read_checkpoint(conn, LIVE) == truth.head
        user_rows = {r.id: r for r in (await conn.execute(select(users))).all()}
        auth_rows = {r.user_id: r for r in (await conn.execute(select(auth))).all()}
        login_rows = (await conn.execute(select(logins.c.id, logins.c.user_id))).all()
    assert set(user_rows) == set(auth_rows) == set(truth.states)
    for uid, state in truth.states.items():
        row, a = user_rows[uid], auth_rows[uid]
        assert (row.email, row.role, row.status, row.version, row.login_count) == (
            state.email,
            state.role,
            state.status.value,
            state.version,
            state.login_count,
        ), uid
        assert (a.email, a.status, a.version, a.password_hash) == (
            state.email,
            state.status.value,
            state.version,
            state.password_hash,
        ), uid
    positions = sorted(r.id for r in login_rows)
    assert len(positions) == len(set(positions)), "a login was projected twice"
    assert positions == sorted(p for ps in truth.logins.values() for p in ps)
