"""store_svc.relay over a fake Kafka and a real engine on SQLite: order, acks, retries, position."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

from service_kit.timeconv import utcnow
from store_svc import engine
from store_svc.engine import ExpectedVersion, NewEvent, StorageUnavailable
from store_svc.relay import CONTENT_TYPE, OutboxRelay, Producer
from store_svc.relay_checkpoint import FileRelayCheckpoint

pytestmark = pytest.mark.unit
TOPIC = "user-events"


@dataclass
class FakeKafka:
    """A broker: ``down`` refuses connections; ``fail`` fails the next N sends' acks;
    ``hold`` keeps acks back until released."""

    down: bool = False
    fail: int = 0
    hold: bool = False
    log: list[tuple[bytes, bytes, dict[str, bytes]]] = field(default_factory=list)
    held: list[tuple[asyncio.Future[Any], tuple[bytes, bytes, dict[str, bytes]]]] = field(
        default_factory=list
    )
    producers: int = 0

    def release(self) -> None:
        for future, message in self.held:
            if not future.done():
                self.log.append(message)
                future.set_result(None)
        self.held.clear()


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        self.kafka.producers += 1
        if self.kafka.down:
            raise ConnectionError("Kafka is down")

    async def send(
        self, topic: str, value: bytes, key: bytes, *, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        assert topic == TOPIC
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        message = (key, value, dict(headers))
        if self.kafka.fail:
            self.kafka.fail -= 1
            future.set_exception(TimeoutError("no ack"))
        elif self.kafka.hold:
            self.kafka.held.append((future, message))
        else:
            self.kafka.log.append(message)
            future.set_result(None)
        return future

    async def stop(self) -> None: ...


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[engine.EventStore]:
    storage = await engine.SqliteStorage.open(tmp_path / "events.sqlite3")
    event_store = await engine.EventStore.open(storage, batch_max_delay=0)
    yield event_store
    await event_store.close()


async def append(store: engine.EventStore, count: int, *, stream: str | None = None) -> None:
    aggregate = stream or str(uuid.uuid4())
    for _ in range(count):
        await store.append(
            aggregate,
            "user",
            ExpectedVersion.ANY,
            [NewEvent(str(uuid.uuid4()), "test.happened", b'{"secret": "hash"}')],
            now=utcnow(),
        )


def relay_for(
    store: engine.EventStore, kafka: FakeKafka, folder: Path, **options: float
) -> OutboxRelay:
    def producer() -> Producer:
        return FakeProducer(kafka)

    return OutboxRelay(
        store=store,
        checkpoint=FileRelayCheckpoint(folder=folder, topic=TOPIC),
        producer_factory=producer,
        topic=TOPIC,
        save_interval=0.01,
        backoff_initial=0.01,
        backoff_max=0.05,
        **options,  # type: ignore[arg-type]
    )


def positions(kafka: FakeKafka) -> list[int]:
    return [pb.Event.FromString(value).position for _, value, _ in kafka.log]


async def test_publishes_every_event_in_order_with_key_headers_and_secrets(
    store: engine.EventStore, tmp_path: Path
) -> None:
    kafka = FakeKafka()
    await append(store, 3, stream="a")
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    await append(store, 4, stream="b")
    assert await relay.wait_relayed(7, within=5)
    await relay.stop(grace=1)
    assert positions(kafka) == list(range(1, 8))
    key, value, headers = kafka.log[3]
    event = pb.Event.FromString(value)
    assert (key, event.aggregate_id, event.version) == (b"b", "b", 1)
    assert dict(event.payload) == {"secret": "hash"}  # unredacted
    assert headers == {
        "event_type": b"test.happened",
        "position": b"4",
        "content-type": CONTENT_TYPE.encode(),
    }
    assert (relay.relayed_position, relay.durable_position, relay.lag) == (7, 7, 0)
    assert json.loads((tmp_path / f"relay-{TOPIC}.json").read_text()) == {"position": 7}


async def test_the_durable_position_never_passes_the_acknowledged_one(
    store: engine.EventStore, tmp_path: Path
) -> None:
    kafka = FakeKafka(hold=True)
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    await append(store, 5)
    await asyncio.sleep(0.1)
    assert (relay.relayed_position, relay.durable_position, relay.lag) == (0, 0, 5)
    assert await FileRelayCheckpoint(folder=tmp_path, topic=TOPIC).load() == 0
    kafka.release()
    assert await relay.wait_relayed(5, within=5)
    await relay.stop(grace=1)
    assert relay.durable_position == 5


async def test_a_failed_ack_resends_from_the_last_acknowledged_event(
    store: engine.EventStore, tmp_path: Path
) -> None:
    kafka = FakeKafka()
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    await append(store, 3)
    assert await relay.wait_relayed(3, within=5)
    kafka.fail = 1
    await append(store, 3)
    assert await relay.wait_relayed(6, within=5)
    await relay.stop(grace=1)
    got = positions(kafka)
    assert sorted(set(got)) == list(range(1, 7)), "nothing lost"
    assert got[:3] == [1, 2, 3] and got[-3:] == [4, 5, 6]
    assert kafka.producers >= 2  # a new producer after the failure


async def test_kafka_down_delays_the_relay_never_the_appends(
    store: engine.EventStore, tmp_path: Path
) -> None:
    kafka = FakeKafka(down=True)
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    async with asyncio.timeout(5):
        await append(store, 20)
    await asyncio.sleep(0.1)
    assert relay.lag == 20
    assert relay.last_error == "network is unavailable: the connection broke (ConnectionError)"
    assert kafka.producers >= 2  # retried
    kafka.down = False
    assert await relay.wait_relayed(20, within=5)
    assert relay.last_error == ""
    await relay.stop(grace=1)
    assert positions(kafka) == list(range(1, 21))


async def test_resumes_from_the_saved_position_after_a_restart(
    store: engine.EventStore, tmp_path: Path
) -> None:
    await append(store, 6)
    await FileRelayCheckpoint(folder=tmp_path, topic=TOPIC).save(4)
    kafka = FakeKafka()
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    assert await relay.wait_relayed(6, within=5)
    await relay.stop(grace=1)
    assert positions(kafka) == [5, 6]


async def test_a_checkpoint_beyond_the_store_starts_over(
    store: engine.EventStore, tmp_path: Path
) -> None:
    await append(store, 3)
    await FileRelayCheckpoint(folder=tmp_path, topic=TOPIC).save(99)  # another store's
    kafka = FakeKafka()
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    assert await relay.wait_relayed(3, within=5)
    await relay.stop(grace=1)
    assert positions(kafka) == [1, 2, 3]


async def test_stop_gives_kafka_a_grace_period_then_gives_up(
    store: engine.EventStore, tmp_path: Path
) -> None:
    kafka = FakeKafka(hold=True)
    relay = relay_for(store, kafka, tmp_path)
    await relay.start()
    await append(store, 2)
    async with asyncio.timeout(5):
        await relay.stop(grace=0.2)
    assert relay.durable_position == 0


async def test_file_checkpoint(tmp_path: Path) -> None:
    checkpoint = FileRelayCheckpoint(folder=tmp_path, topic=TOPIC)
    assert await checkpoint.load() == 0
    await checkpoint.save(41)
    await checkpoint.save(42)
    assert await checkpoint.load() == 42
    assert not checkpoint.path.with_name(checkpoint.path.name + ".tmp").exists()
    checkpoint.path.write_text("{not json")
    with pytest.raises(StorageUnavailable, match="corrupt"):
        await checkpoint.load()
    with pytest.raises(ValueError, match="topic"):
        FileRelayCheckpoint(folder=tmp_path, topic="../etc/passwd")
