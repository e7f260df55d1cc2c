"""Grouping the items of an async stream into batches of what has already arrived.

Used where per-item cost dominates: the projector commits one transaction
per batch, and the store's Subscribe sends one gRPC message per batch. The
bigger the batch the cheaper each item, but waiting for a batch to fill would
delay every reader waiting for a position. :func:`batches` does neither: a background task
reads ahead into a bounded queue, and each batch is whatever the queue holds
(at least one item, at most ``max_size``). Under load batches grow by
themselves; when idle every item goes out alone and at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _End:
    """The stream ended (``error`` is None) or failed."""

    error: Exception | None


@dataclass(frozen=True, slots=True)
class _Item(Generic[T]):
    value: T


async def batches(
    items: AsyncIterator[T], *, max_size: int, read_ahead: int
) -> AsyncGenerator[list[T], None]:
    """Yields lists of the items available now, in order; re-raises the stream's error.

    At most ``read_ahead`` items are buffered (back-pressure on the stream).
    Closing the generator stops the reader and closes ``items``.
    """
    if max_size < 1 or read_ahead < 1:
        raise ValueError("max_size and read_ahead must be at least 1")
    queue: asyncio.Queue[_Item[T] | _End] = asyncio.Queue(maxsize=read_ahead)

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put(_Item(item))
        except Exception as exc:
            await queue.put(_End(exc))
        else:
            await queue.put(_End(None))

    reader = asyncio.create_task(pump(), name="batches-reader")
    try:
        while True:
            entry = await queue.get()
            batch: list[T] = []
            while isinstance(entry, _Item):
                batch.append(entry.value)
                if len(batch) >= max_size or queue.empty():
                    break
                entry = queue.get_nowait()
            if batch:
                yield batch
            if isinstance(entry, _End):
                if entry.error is not None:
                    raise entry.error
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
