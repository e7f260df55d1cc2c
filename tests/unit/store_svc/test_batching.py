"""store_svc.batching: groups what is ready, in order, bounded, errors last."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from store_svc.batching import batches

pytestmark = pytest.mark.unit


async def burst_then_trickle() -> AsyncIterator[int]:
    for i in range(10):  # ready at once, like a page of history
        yield i
    for i in range(10, 13):  # one at a time, like live events
        await asyncio.sleep(0.01)
        yield i


async def test_groups_ready_items_and_keeps_order() -> None:
    groups = [g async for g in batches(burst_then_trickle(), 4)]
    assert [x for g in groups for x in g] == list(range(13))
    assert all(1 <= len(g) <= 4 for g in groups)
    assert len(groups) < 13  # the burst was grouped


async def test_error_comes_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("storage down")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="storage down"):
        async for group in batches(failing(), 10):
            seen.extend(group)
    assert seen == [1, 2]


async def test_closing_the_consumer_stops_the_source() -> None:
    stopped = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0)
        finally:
            stopped.set()

    consumer = batches(endless(), 5)
    first = await anext(consumer)
    assert first[0] == 0
    await consumer.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(stopped.wait(), 5)


async def test_rejects_a_zero_batch() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        await anext(batches(burst_then_trickle(), 0))
