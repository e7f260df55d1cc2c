"""Storage contract, subscriptions: catch-up then live, exactly once, slow consumers."""

from __future__ import annotations

import asyncio

import pytest

from store_svc.engine import Checkpoint, EventStore, ExpectedVersion, RecordedEvent
from store_svc.engine import store as store_module
from tests.integration.store_engine.support import T0, Harness, new_event, uid

pytestmark = pytest.mark.integration


async def _append_many(store: EventStore, writers: int, each: int) -> set[str]:
    """`writers` concurrent tasks, each appending `each` single events one after another."""
    ids: set[str] = set()

    async def writer() -> None:
        stream = f"agg-{uid()}"
        for _ in range(each):
            event = new_event()
            await store.append(stream, "thing", ExpectedVersion.ANY, [event], now=T0)
            ids.add(event.event_id)
            await asyncio.sleep(0)

    await asyncio.gather(*(writer() for _ in range(writers)))
    return ids


async def _collect(
    store: EventStore, *, until_position: asyncio.Future[int], slow: bool = False
) -> list[RecordedEvent]:
    """Events from position 0 until the position `until_position` resolves to."""
    received: list[RecordedEvent] = []
    async for item in store.subscribe(0, heartbeat=0.2):
        if isinstance(item, RecordedEvent):
            received.append(item)
            if slow and len(received) % 3 == 0:
                await asyncio.sleep(0.002)  # far slower than the writers
        if until_position.done() and received and received[-1].position >= until_position.result():
            return received
    return received


async def test_subscription_from_zero_while_appending_gets_everything_once(
    harness: Harness,
) -> None:
    store = await harness.open()
    await _append_many(store, writers=4, each=5)  # some history before subscribing
    target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    consumer = asyncio.create_task(_collect(store, until_position=target))
    ids = await _append_many(store, writers=10, each=20)
    target.set_result(store.head_position())

    received = await asyncio.wait_for(consumer, 30)
    assert [e.position for e in received] == list(range(1, store.head_position() + 1))
    assert ids <= {e.event_id for e in received}
    assert store.live_subscribers == 0  # the generator finished and unregistered


async def test_slow_subscriber_with_tiny_buffer_gets_everything_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    drops = 0
    original_drop = store_module._LiveFeed.drop

    def counting_drop(feed: store_module._LiveFeed) -> None:
        nonlocal drops
        drops += 1
        original_drop(feed)

    monkeypatch.setattr(store_module._LiveFeed, "drop", counting_drop)
    store = await harness.open(subscriber_buffer=3)
    target: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    consumer = asyncio.create_task(_collect(store, until_position=target, slow=True))
    for _ in range(1000):  # wait until it caught up and is live, then outpace it
        if store.live_subscribers:
            break
        await asyncio.sleep(0.01)
    ids = await _append_many(store, writers=8, each=25)
    target.set_result(store.head_position())

    received = await asyncio.wait_for(consumer, 30)
    assert [e.position for e in received] == list(range(1, store.head_position() + 1))
    assert ids <= {e.event_id for e in received}
    assert drops > 0  # the overflow path (drop, page from storage, rejoin) was exercised


async def test_heartbeat_checkpoints_and_live_events(harness: Harness) -> None:
    store = await harness.open()
    await store.append(f"agg-{uid()}", "thing", ExpectedVersion.ANY, [new_event()], now=T0)
    head = store.head_position()
    subscription = store.subscribe(head, heartbeat=0.05)
    assert await asyncio.wait_for(anext(subscription), 5) == Checkpoint(head)
    assert store.live_subscribers == 1
    event = new_event()
    await store.append(f"agg-{uid()}", "thing", ExpectedVersion.ANY, [event], now=T0)
    item = await asyncio.wait_for(anext(subscription), 5)
    assert isinstance(item, RecordedEvent)
    assert (item.position, item.event_id) == (head + 1, event.event_id)
    assert await asyncio.wait_for(anext(subscription), 5) == Checkpoint(head + 1)
    # Closing the generator unregisters it.
    await subscription.aclose()
    assert store.live_subscribers == 0


async def test_cancelled_consumer_unregisters_and_close_ends_subscriptions(
    harness: Harness,
) -> None:
    store = await harness.open()

    async def consume() -> int:
        count = 0
        async for _ in store.subscribe(store.head_position(), heartbeat=0.05):
            count += 1
        return count

    cancelled = asyncio.create_task(consume())
    ending = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    assert store.live_subscribers == 2
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert store.live_subscribers == 1

    await store.close()
    assert await asyncio.wait_for(ending, 5) >= 1  # got checkpoints, then ended
