"""KeyedLocks: one holder per key at a time, in one order, and nothing kept afterwards."""

from __future__ import annotations

import asyncio

import pytest

from service_kit.limit_store import KeyedLocks

pytestmark = pytest.mark.unit


async def test_holders_of_a_shared_key_take_turns_and_the_locks_are_dropped() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    most = 0

    async def hold(name: str, keys: list[str]) -> None:
        nonlocal most
        async with locks.hold(keys):
            inside.append(name)
            most = max(most, len(inside))
            await asyncio.sleep(0.01)
            inside.remove(name)

    # Opposite orders would deadlock without the sorted order.
    await asyncio.wait_for(
        asyncio.gather(*(hold(f"t{i}", ["a", "b"] if i % 2 else ["b", "a"]) for i in range(20))),
        timeout=5,
    )
    assert most == 1
    assert locks._locks == {}


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLocks()
    async with locks.hold(["a"]):
        await asyncio.wait_for(_enter(locks, ["b"]), timeout=1)


async def _enter(locks: KeyedLocks, keys: list[str]) -> None:
    async with locks.hold(keys):
        pass
