"""The catch-up subscription over gRPC: history then live, exactly once, in order."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

from store_svc.app import StoreService
from tests.integration.store_svc.support import FAKE_HASH, StoreStub, register

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


async def test_subscription_from_zero_while_appending_gets_everything_once(store: Store) -> None:
    _, stub = store
    for i in range(30):  # some history before the subscription opens
        await register(stub, f"before{i}@example.com")
    total = 130
    call = stub.Subscribe(pb.SubscribeRequest(from_position=0, heartbeat_seconds=1))

    async def writer() -> None:
        for i in range(total - 30):
            await register(stub, f"during{i}@example.com")

    write_task = asyncio.create_task(writer())
    positions: list[int] = []
    async with asyncio.timeout(60):
        async for message in call:
            if message.HasField("event"):
                assert FAKE_HASH not in str(message.event.payload)
                positions.append(message.event.position)
                if len(positions) == total:
                    break
    call.cancel()
    await write_task
    assert positions == list(range(1, total + 1))


async def test_subscription_sends_checkpoints_and_secrets_only_when_asked(store: Store) -> None:
    _, stub = store
    await register(stub, "ck@example.com")
    call = stub.Subscribe(
        pb.SubscribeRequest(from_position=0, heartbeat_seconds=1, include_secrets=True)
    )
    kinds: list[str] = []
    async with asyncio.timeout(10):
        async for message in call:
            kind = message.WhichOneof("message")
            assert kind is not None
            kinds.append(kind)
            if kind == "event":
                assert message.event.payload["password_hash"] == FAKE_HASH
            if kind == "checkpoint":
                assert message.checkpoint.position == 1
                break
    call.cancel()
    assert kinds[0] == "event" and kinds[-1] == "checkpoint"


async def test_batched_subscription_delivers_everything_once_in_fewer_messages(
    store: Store,
) -> None:
    _, stub = store
    for i in range(120):
        await register(stub, f"batch{i}@example.com")
    call = stub.Subscribe(pb.SubscribeRequest(from_position=0, heartbeat_seconds=1, max_batch=50))
    positions: list[int] = []
    messages = 0
    async with asyncio.timeout(30):
        async for message in call:
            assert message.WhichOneof("message") != "event"  # batched mode: no singles
            if message.HasField("batch"):
                messages += 1
                assert 1 <= len(message.batch.events) <= 50
                positions.extend(e.position for e in message.batch.events)
            if len(positions) >= 120:
                break
    call.cancel()
    assert positions == list(range(1, 121))
    assert messages < 120


async def test_max_batch_is_bounded(store: Store) -> None:
    _, stub = store
    call = stub.Subscribe(pb.SubscribeRequest(max_batch=1001))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("max_batch")
