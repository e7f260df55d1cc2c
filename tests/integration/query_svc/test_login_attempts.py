"""Login budgets on real SQLite and PostgreSQL, shared by two "instances" (two Database objects).

Each instance has its own engine and pool, as two query_svc processes would;
what one counts the other sees, and a fresh instance (a restart) still sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from query_svc.db import Database
from query_svc.login_attempts import LoginAttempts, Reservation, TooManyAttempts
from query_svc.session_tables import SESSION_TABLES
from query_svc.settings import LoginLimits, QuerySettings
from service_kit import refusals
from service_kit.limit_store import LIMIT_METADATA, SqlRequestLimiter

pytestmark = pytest.mark.integration

LIMITS = LoginLimits(
    max_failures_per_pair=5,
    max_failures_per_email=8,
    max_failures_per_address=10,
    window_seconds=600,
    max_logins_per_email=3,
    logins_window_seconds=60,
    record_every_seconds=30,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def databases(
    read_model_settings: Callable[..., QuerySettings],
) -> AsyncIterator[tuple[Database, Database]]:
    settings = read_model_settings()
    first, second = Database.from_settings(settings), Database.from_settings(settings)
    schema = settings.postgres.schema if settings.db_backend == "postgres" else ""
    await first.ensure_schema(schema=schema, also=[SESSION_TABLES.metadata, LIMIT_METADATA])
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def _try(attempts: LoginAttempts, email: str, address: str) -> Reservation | int:
    try:
        return await attempts.reserve(email=email, address=address)
    except TooManyAttempts as exc:
        return exc.retry_after


async def test_simultaneous_guesses_across_two_instances_take_at_most_the_budget(
    databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    one, two = (LoginAttempts(db, LIMITS, clock=clock) for db in databases)
    seen: list[tuple[str, int]] = []

    def hook(limit: str, wait: int) -> None:
        seen.append((limit, wait))

    refusals.add_hook(hook)
    try:
        outcomes = await asyncio.gather(
            *(_try(one if i % 2 else two, "eve@example.com", "198.51.100.7") for i in range(40))
        )
    finally:
        refusals.remove_hook(hook)
    reserved = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(reserved) == LIMITS.max_failures_per_pair
    assert all(o == 600 for o in outcomes if isinstance(o, int))
    assert len(seen) == 35 and {limit for limit, _ in seen} == {"login.pair"}
    # Still refused before any is settled, and after they fail, on either instance.
    for attempt in reserved:
        await one.failed(attempt)
    assert await _try(two, "eve@example.com", "198.51.100.7") == 600
    # A restart forgets nothing.
    restarted = LoginAttempts(databases[0], LIMITS, clock=clock)
    clock.now += 100
    assert await _try(restarted, "eve@example.com", "198.51.100.7") == 500


async def test_the_owner_elsewhere_is_not_locked_out_and_a_known_address_is_spared(
    databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    attempts = LoginAttempts(databases[0], LIMITS, clock=clock)
    owner = await attempts.reserve(email="ann@example.com", address="10.0.0.1")
    assert await attempts.succeeded(owner)  # 10.0.0.1 is now a known address of ann
    # Guessers spread over addresses exhaust the per-email budget (8) ...
    for i in range(8):
        await attempts.failed(
            await attempts.reserve(email="ann@example.com", address=f"10.9.0.{i}")
        )
    assert await _try(attempts, "ann@example.com", "10.9.1.1") == 600
    # ... but the owner at her usual address still gets in.
    assert isinstance(await _try(attempts, "ann@example.com", "10.0.0.1"), Reservation)


async def test_an_address_guessing_many_accounts_does_not_lock_out_their_owners(
    databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    attempts = LoginAttempts(databases[0], LIMITS, clock=clock)
    bob = await attempts.reserve(email="bob@example.com", address="10.0.0.5")
    await attempts.succeeded(bob)
    for i in range(10):
        await attempts.failed(await attempts.reserve(email=f"x{i}@example.com", address="10.0.0.5"))
    assert await _try(attempts, "new@example.com", "10.0.0.5") == 600
    assert isinstance(await _try(attempts, "bob@example.com", "10.0.0.5"), Reservation)


async def test_successes_are_limited_and_repeats_are_not_recorded(
    databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    attempts = LoginAttempts(databases[0], LIMITS, clock=clock)
    recorded = []
    for _ in range(3):
        recorded.append(
            await attempts.succeeded(await attempts.reserve(email="c@x.io", address=""))
        )
        clock.now += 1
    assert recorded == [True, False, False]
    assert await _try(attempts, "c@x.io", "") == 57
    clock.now += 60
    assert await attempts.succeeded(await attempts.reserve(email="c@x.io", address=""))


async def test_a_success_clears_its_pair_failures(databases: tuple[Database, Database]) -> None:
    attempts = LoginAttempts(databases[0], LIMITS, clock=Clock())
    for _ in range(4):
        await attempts.failed(await attempts.reserve(email="d@x.io", address="10.0.0.8"))
    await attempts.succeeded(await attempts.reserve(email="d@x.io", address="10.0.0.8"))
    for _ in range(5):
        await attempts.failed(await attempts.reserve(email="d@x.io", address="10.0.0.8"))
    assert isinstance(await _try(attempts, "d@x.io", "10.0.0.8"), int)


async def test_request_limiter_is_shared_by_instances(
    databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    one, two = (
        SqlRequestLimiter(db, scope="reset.email", limit=3, window=3600, clock=clock)
        for db in databases
    )
    waits = await asyncio.gather(*(limiter.acquire("k") for limiter in (one, two) * 5))
    assert sorted(waits) == [0, 0, 0] + [3600] * 7
    clock.now += 3600
    assert await two.acquire("k") == 0
