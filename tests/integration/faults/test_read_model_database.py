"""The read model's database itself, crashed, restarted and paused: query_svc.db on the real
PostgreSQL, with nothing between the calls and the server (no breaker, no gateway).

Every call is hammered through ``Database.read`` while PostgreSQL goes away
and comes back through its start-up (recovery after an immediate stop), so
every error the driver raises on the way, in whatever wrapping SQLAlchemy
gives it, must come out as UNAVAILABLE naming the database; and a paused
server must be answered within the read bound.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import text

from query_svc.db import Database
from query_svc.settings import DatabaseLimits, QuerySettings
from service_kit.dependency_errors import DependencyUnavailable
from tests.auth_support import TEST_ENV
from tests.integration.faults.support import infra, infra_manages
from tests.integration.kafka.support import wait_until
from tests.integration.query_svc.conftest import drop_schema

pytestmark = pytest.mark.integration

READ_BOUND = 1.0


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    if not os.environ.get("POSTGRES_QUERY_HOST"):
        pytest.skip('POSTGRES_QUERY_HOST not set (eval "$(scripts/infra.sh env)")')
    if not infra_manages("postgres"):
        pytest.skip("postgres is not run by scripts/infra.sh here: not touching it")
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("POSTGRES_QUERY_")},
        **TEST_ENV,
        "QUERY_DB_BACKEND": "postgres",
        "POSTGRES_QUERY_SCHEMA": f"faults_db_{uuid.uuid4().hex[:10]}",
    }
    settings = QuerySettings.from_env(env)
    # No breaker in the way: every call goes to the server.
    limits = DatabaseLimits(read=READ_BOUND, write=5.0, breaker_failures=1_000_000)
    settings = replace(settings, db_limits=limits)
    db = Database.from_settings(settings)
    await db.ensure_schema(schema=settings.postgres.schema)
    try:
        yield db
    finally:
        await db.close()
        await drop_schema(settings)


class Hammer:
    """Readers calling ``SELECT 1`` back to back; every outcome counted."""

    def __init__(self, db: Database, readers: int = 4) -> None:
        self.db = db
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.slowest = 0.0
        self.slow: list[tuple[float, str]] = []
        self.errors: list[BaseException] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._read()) for _ in range(readers)]

    async def _read(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                async with self.db.read() as conn:
                    await conn.execute(text("SELECT 1"))
                self.outcomes["ok"] += 1
            except DependencyUnavailable as exc:
                self.outcomes[exc.reason.split(" (")[0]] += 1
                await asyncio.sleep(0.02)
            except Exception as exc:  # anything else is what the issue saw as a 500
                self.errors.append(exc)
            took = time.monotonic() - started
            self.slowest = max(self.slowest, took)
            if took > READ_BOUND + 0.1:
                self.slow.append((took, f"{self.outcomes.most_common(3)} {self.errors[-1:]}"))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def test_crash_and_start_up_every_error_is_unavailable(database: Database) -> None:
    hammer = Hammer(database)
    try:
        await asyncio.sleep(0.5)
        try:
            await infra("crash", "postgres")
            await asyncio.sleep(1.5)
        finally:
            await infra("start", "postgres")  # crash recovery: "the database system is starting up"
        ok_before = hammer.outcomes["ok"]
        await wait_until(lambda: hammer.outcomes["ok"] > ok_before, within=30, what="reads")
    finally:
        await hammer.stop()
    print(f"outcomes: {dict(hammer.outcomes)}")
    assert hammer.errors == [], [repr(e)[:300] for e in hammer.errors[:3]]
    assert sum(n for k, n in hammer.outcomes.items() if k != "ok") > 0


async def test_paused_every_read_answers_within_its_bound(database: Database) -> None:
    hammer = Hammer(database)
    try:
        await asyncio.sleep(0.5)
        try:
            await infra("pause", "postgres")
            await asyncio.sleep(5)
        finally:
            await infra("resume", "postgres")
        ok_before = hammer.outcomes["ok"]
        await wait_until(lambda: hammer.outcomes["ok"] > ok_before, within=15, what="reads")
    finally:
        await hammer.stop()
    print(f"outcomes: {dict(hammer.outcomes)}, slowest {hammer.slowest:.2f}s {hammer.slow}")
    assert hammer.errors == [], [repr(e)[:300] for e in hammer.errors[:3]]
    assert hammer.outcomes["it did not answer within 1.0s"] > 0
    assert hammer.slowest < READ_BOUND + 0.5
