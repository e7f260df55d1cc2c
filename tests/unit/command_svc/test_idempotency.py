"""IdempotencyCache: same key -> first result; bounded; expiring; per request."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from command_svc.idempotency import IdempotencyCache, check_key, fingerprint
from service_kit.errors import ServiceError

pytestmark = pytest.mark.unit

KEY = ("Register", "", "k1")
DIGEST = fingerprint(b"request")


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        return f"result-{self.calls}"


async def test_second_call_with_the_same_key_returns_the_first_result() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    compute = Counter()
    assert await cache.run(KEY, DIGEST, compute) == "result-1"
    assert await cache.run(KEY, DIGEST, compute) == "result-1"
    assert compute.calls == 1


async def test_keys_are_separate_per_method_principal_and_key() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    compute = Counter()
    for key in (KEY, ("ChangeEmail", "", "k1"), ("Register", "u1", "k1"), ("Register", "", "k2")):
        await cache.run(key, DIGEST, compute)
    assert compute.calls == 4


async def test_same_key_for_a_different_request_is_invalid_argument() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    await cache.run(KEY, DIGEST, Counter())
    with pytest.raises(ServiceError) as info:
        await cache.run(KEY, fingerprint(b"other"), Counter())
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("idempotency-key:")


async def test_concurrent_calls_with_one_key_run_once() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    compute = Counter()
    results = await asyncio.gather(*(cache.run(KEY, DIGEST, compute) for _ in range(5)))
    assert results == ["result-1"] * 5
    assert compute.calls == 1


async def test_failures_are_not_remembered() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return "ok"

    with pytest.raises(RuntimeError):
        await cache.run(KEY, DIGEST, flaky)
    assert await cache.run(KEY, DIGEST, flaky) == "ok"
    assert len(cache) == 1


async def test_waiter_shares_the_first_calls_failure() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()
    gate = asyncio.Event()

    async def failing() -> str:
        await gate.wait()
        raise RuntimeError("boom")

    first = asyncio.create_task(cache.run(KEY, DIGEST, failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(cache.run(KEY, DIGEST, Counter()))
    await asyncio.sleep(0)
    gate.set()
    for task in (first, second):
        with pytest.raises(RuntimeError):
            await task


async def test_waiter_runs_itself_when_the_first_call_is_cancelled() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache()

    async def forever() -> str:
        await asyncio.Event().wait()
        return "never"

    first = asyncio.create_task(cache.run(KEY, DIGEST, forever))
    await asyncio.sleep(0)
    compute = Counter()
    second = asyncio.create_task(cache.run(KEY, DIGEST, compute))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == "result-1"
    assert first.cancelled()


async def test_entries_expire_after_the_ttl() -> None:
    now = [0.0]
    cache: IdempotencyCache[str] = IdempotencyCache(ttl_seconds=10, clock=lambda: now[0])
    compute = Counter()
    await cache.run(KEY, DIGEST, compute)
    now[0] = 9.9
    assert await cache.run(KEY, DIGEST, compute) == "result-1"
    now[0] = 10.0
    assert await cache.run(KEY, DIGEST, compute) == "result-2"


async def test_least_recently_used_entries_are_evicted() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache(capacity=2)
    compute = Counter()
    a, b, c = (("m", "", k) for k in "abc")
    await cache.run(a, DIGEST, compute)
    await cache.run(b, DIGEST, compute)
    await cache.run(a, DIGEST, compute)  # a is now the most recent
    await cache.run(c, DIGEST, compute)  # evicts b
    assert len(cache) == 2
    assert await cache.run(a, DIGEST, compute) == "result-1"
    assert await cache.run(b, DIGEST, compute) == "result-4"


async def test_capacity_zero_disables_the_cache() -> None:
    cache: IdempotencyCache[str] = IdempotencyCache(capacity=0)
    compute = Counter()
    await cache.run(KEY, DIGEST, compute)
    await cache.run(KEY, DIGEST, compute)
    assert compute.calls == 2


def test_check_key_bounds_the_length() -> None:
    assert check_key("k" * 128) == "k" * 128
    with pytest.raises(ServiceError) as info:
        check_key("k" * 129)
    assert info.value.message == "idempotency-key: must be at most 128 characters"
