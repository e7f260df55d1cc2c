"""Grouping what an async iterator has already produced, without waiting for more.

A catch-up subscription yields a page of history without suspending; sending
each event as its own gRPC message costs far more than the event. ``batches``
runs the source in a task feeding a bounded queue and hands out everything
queued (up to ``max_batch``) whenever the consumer asks, so a batch never
waits for an event that is not there yet: live latency is unchanged.

Invariants: order is preserved; nothing is dropped or duplicated; at most
``max_batch`` items are buffered (the source waits while the consumer is
slow); an exception of the source reaches the consumer after the items
before it; closing the consumer cancels the source task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


async def batches(source: AsyncIterator[T], max_batch: int) -> AsyncIterator[list[T]]:
    """Lists of consecutive items of ``source``: each as large as is ready, ≤ max_batch."""
    if max_batch < 1:
        raise ValueError("max_batch must be >= 1")
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max_batch)
    failure: list[BaseException] = []

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, in order
            failure.append(exc)
        await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            first = await queue.get()
            if first is _END:
                break
            batch = [first]
            while len(batch) < max_batch and not queue.empty():
                item = queue.get_nowait()
                if item is _END:
                    queue.put_nowait(_END)  # end after this batch
                    break
                batch.append(item)
            yield batch  # type: ignore[misc]
        if failure:
            raise failure[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
