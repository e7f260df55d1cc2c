"""batching: batches are what has arrived, in order, bounded; errors come through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service_kit.batching import batches

pytestmark = pytest.mark.unit


async def burst_then_trickle() -> AsyncIterator[int]:
    for i in range(10):  # arrives at once
        yield i
    await asyncio.sleep(0.02)
    yield 10
    await asyncio.sleep(0.02)
    yield 11


async def test_batches_group_what_arrived_and_keep_order() -> None:
    got = [b async for b in batches(burst_then_trickle(), max_size=4, read_ahead=100)]
    assert [x for b in got for x in b] == list(range(12))
    assert all(1 <= len(b) <= 4 for b in got)
    assert got[-2:] == [[10], [11]]  # a trickle is not held back to fill a batch
    assert len(got) <= 5


async def test_an_error_arrives_after_the_items_before_it() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise RuntimeError("source broke")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="source broke"):
        async for b in batches(failing(), max_size=10, read_ahead=10):
            seen.extend(b)
    assert seen == [1, 2]


async def test_closing_early_stops_the_reader_and_closes_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0)
        finally:
            closed.set()

    gen = batches(endless(), max_size=3, read_ahead=5)
    first = await anext(gen)
    assert first[0] == 0
    await gen.aclose()
    await asyncio.wait_for(closed.wait(), 1)


async def test_bad_sizes_are_refused() -> None:
    async def empty() -> AsyncIterator[int]:
        return
        yield

    with pytest.raises(ValueError):
        await anext(batches(empty(), max_size=0, read_ahead=1))
