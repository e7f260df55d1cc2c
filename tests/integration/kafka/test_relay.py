"""The outbox relay against a real Kafka: every event once, in order, resumable."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as es
from cqrs.eventstore.v1 import event_store_pb2_grpc as es_grpc
from google.protobuf import json_format

from store_svc import app as store_app
from store_svc.relay import CONTENT_TYPE, OutboxRelay
from store_svc.relay_checkpoint import FileRelayCheckpoint
from tests.auth_support import SERVICE
from tests.integration.kafka.conftest import Kafka, StoreFactory, relay_env
from tests.integration.kafka.support import read_topic, wait_until
from tests.integration.query_svc.feeder import Feeder

pytestmark = pytest.mark.integration


def feeder_for(service: store_app.StoreService, channel: grpc.aio.Channel) -> Feeder:
    return Feeder(es_grpc.EventStoreServiceStub(channel), lambda: SERVICE)


def relay_of(service: store_app.StoreService) -> OutboxRelay:
    assert service.relay is not None, "the relay should be on when KAFKA_BROKER is set"
    return service.relay


@pytest.mark.parametrize("backend", ["sqlite", "clickhouse"])
async def test_every_event_once_in_order_per_key_with_headers(
    backend: str,
    tmp_path: Path,
    kafka: Kafka,
    start_store: StoreFactory,
    password_hash: str,
) -> None:
    service = await start_store(relay_env(backend, tmp_path, kafka))
    relay = relay_of(service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
        feeder = feeder_for(service, channel)
        await feeder.populate(users=25, logins_per_user=6, password_hash=password_hash)
    assert await relay.wait_relayed(feeder.head, within=30)
    await wait_until(lambda: relay.durable_position == feeder.head, within=10, what="saved")
    assert relay.lag == 0

    records = await read_topic(kafka.broker, kafka.topic)
    positions = sorted(r.event.position for r in records)
    assert positions == list(range(1, feeder.head + 1)), "each event exactly once"

    by_key: dict[bytes, list[tuple[int, int, int]]] = defaultdict(list)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = r.event
        assert r.key == event.aggregate_id.encode()
        assert r.headers == {
            "event_type": event.event_type.encode(),
            "position": str(event.position).encode(),
            "content-type": CONTENT_TYPE.encode(),
        }
        by_key[r.key].append((r.offset, event.version, event.position))
        partitions[r.key].add(r.partition)
        if event.event_type == "user.created":
            # The topic is internal: the hash travels unredacted.
            assert json_format.MessageToDict(event.payload)["password_hash"] == password_hash
    assert len(by_key) == 25
    assert len({p for ps in partitions.values() for p in ps}) > 1, "keys spread over partitions"
    for key, rows in by_key.items():
        assert len(partitions[key]) == 1, "one aggregate, one partition"
        versions = [v for _, v, _ in rows]
        assert versions == list(range(1, len(rows) + 1)), key
        assert [p for _, _, p in rows] == sorted(p for _, _, p in rows)


@pytest.mark.parametrize("backend", ["sqlite", "clickhouse"])
async def test_graceful_restart_resumes_from_the_durable_position(
    backend: str,
    tmp_path: Path,
    kafka: Kafka,
    start_store: StoreFactory,
    password_hash: str,
) -> None:
    env = relay_env(backend, tmp_path, kafka)
    first = await start_store(env)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.server.port}") as channel:
        feeder = feeder_for(first, channel)
        await feeder.populate(users=10, logins_per_user=3, password_hash=password_hash)
    await first.stop(grace=5)  # publishes what is committed, then saves the position
    assert relay_of(first).durable_position == feeder.head
    middle = feeder.head

    second = await start_store(env)
    relay = relay_of(second)
    await wait_until(lambda: relay.relayed_position >= middle, within=10, what="resume")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.server.port}") as channel:
        feeder.stub = es_grpc.EventStoreServiceStub(channel)
        await feeder.populate(users=10, logins_per_user=3, password_hash=password_hash)
    assert await relay.wait_relayed(feeder.head, within=30)

    positions = sorted(r.event.position for r in await read_topic(kafka.broker, kafka.topic))
    assert positions == list(range(1, feeder.head + 1)), "nothing lost, nothing re-sent"


async def test_after_a_crash_only_the_tail_after_the_durable_position_is_sent_again(
    tmp_path: Path,
    kafka: Kafka,
    start_store: StoreFactory,
    password_hash: str,
) -> None:
    env = relay_env("sqlite", tmp_path, kafka)
    first = await start_store(env)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.server.port}") as channel:
        feeder = feeder_for(first, channel)
        await feeder.populate(users=8, logins_per_user=4, password_hash=password_hash)
    await first.stop(grace=5)
    # As if the process had died before saving its last acknowledgements.
    checkpoint = FileRelayCheckpoint(folder=tmp_path, topic=kafka.topic)
    crashed_at = feeder.head - 7
    checkpoint.path.write_text(json.dumps({"position": crashed_at}))

    second = await start_store(env)
    relay = relay_of(second)
    assert await relay.wait_relayed(feeder.head, within=30)
    await wait_until(lambda: relay.durable_position == feeder.head, within=10, what="saved")
    assert await checkpoint.load() == feeder.head

    counts: dict[int, int] = defaultdict(int)
    for r in await read_topic(kafka.broker, kafka.topic):
        counts[r.event.position] += 1
    assert sorted(counts) == list(range(1, feeder.head + 1)), "nothing lost"
    assert {p for p, n in counts.items() if n == 2} == set(range(crashed_at + 1, feeder.head + 1))
    assert max(counts.values()) == 2


async def test_appends_never_wait_for_an_unreachable_kafka(
    tmp_path: Path, start_store: StoreFactory, password_hash: str
) -> None:
    # Nothing listens on port 1: every connection is refused at once.
    env = relay_env("sqlite", tmp_path, Kafka("127.0.0.1:1", "nowhere"))
    service = await start_store(env)
    relay = relay_of(service)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
        feeder = feeder_for(service, channel)
        async with asyncio.timeout(20):
            await feeder.populate(users=10, logins_per_user=2, password_hash=password_hash)
        count = await feeder.stub.CountEvents(es.CountEventsRequest(), metadata=SERVICE, timeout=5)
    assert count.count == feeder.head
    await wait_until(lambda: relay.last_error != "", within=10, what="a logged relay error")
    assert relay.relayed_position == 0
    assert relay.lag == feeder.head
