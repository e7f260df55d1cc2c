"""store_svc's readiness checks (see :mod:`service_kit.readiness`).

* ``storage`` (required): the event storage answers ``SELECT 1`` in time:
  ClickHouse over a connection of its own (so a probe never waits behind
  the engine's pool), or the SQLite file.
* ``kafka_relay`` (not required, when the relay is on): DEGRADED while
  events are waiting and the relayed position has not moved for
  :data:`RELAY_STALL_AFTER` seconds: "relay behind by N events ...".

The report's ``role`` is the engine's (``leader``; a standby store, when
the engine has one, is alive but not ready) and its ``head`` detail is the
store's last position, which query_svc's projector measures itself against.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from service_kit import readiness
from service_kit.dependency_errors import Dependency
from service_kit.readiness import Check, Readiness, Result
from store_svc import clickhouse_client
from store_svc.engine import ClickHouseConfig, EventStore
from store_svc.relay import OutboxRelay
from store_svc.servicer import SERVICE_NAME
from store_svc.settings import StoreSettings

PROBE_TIMEOUT: Final = 1.5
RELAY_STALL_AFTER: Final = 3.0


def storage_dependency(settings: StoreSettings) -> Dependency:
    if settings.backend == "clickhouse":
        ch = settings.clickhouse
        return Dependency("event storage", f"ClickHouse at {ch.host}:{ch.port}")
    return Dependency("event storage", f"SQLite at {settings.sqlite_path}")


async def ping_clickhouse(config: ClickHouseConfig) -> None:
    """``SELECT 1`` on a fresh connection, within :data:`PROBE_TIMEOUT`."""
    async with asyncio.timeout(PROBE_TIMEOUT):
        probe = clickhouse_client.connection(config, timeout=PROBE_TIMEOUT, database="default")
        async with probe as conn, conn.cursor() as cursor:
            await cursor.execute("SELECT 1")
            await cursor.fetchall()


def _ping_sqlite(path: Path) -> None:
    # Read-only and without creating the file: a probe must not change anything.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=PROBE_TIMEOUT)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    finally:
        conn.close()


class RelayProgress:
    """Whether the relay moves: remembers when its position last changed."""

    def __init__(self, relay: OutboxRelay, *, clock: Callable[[], float] = time.monotonic):
        self._relay = relay
        self._clock = clock
        self._seen = relay.relayed_position
        self._moved_at = clock()

    async def __call__(self) -> Result:
        relay, now = self._relay, self._clock()
        position = relay.relayed_position
        if position != self._seen:
            self._seen, self._moved_at = position, now
        behind = relay.lag
        if behind == 0:
            self._moved_at = now
            return readiness.ok(behind=0, relayed_position=position)
        idle = now - self._moved_at
        if idle < RELAY_STALL_AFTER:
            return readiness.ok(behind=behind, relayed_position=position)
        error = f"; last error: {relay.last_error}" if relay.last_error else ""
        return readiness.degraded(
            f"relay behind by {behind} events, no progress for {idle:.0f} s "
            f"(Kafka topic {relay.topic}{error})",
            behind=behind,
            relayed_position=position,
            stalled_seconds=round(idle, 1),
        )


def store_readiness(
    *, settings: StoreSettings, store: EventStore, relay: OutboxRelay | None
) -> Readiness:
    """The checks of store_svc."""
    dependency = storage_dependency(settings)

    async def storage() -> Result:
        try:
            if settings.backend == "clickhouse":
                await ping_clickhouse(settings.clickhouse)
            else:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await asyncio.to_thread(_ping_sqlite, settings.sqlite_path)
        except TimeoutError:
            raise dependency.timed_out(PROBE_TIMEOUT) from None
        except Exception as exc:
            error = dependency.error(exc)
            if error is None:
                raise
            raise error from exc
        return readiness.ok()

    checks = [Check("storage", storage, required=True, timeout=PROBE_TIMEOUT + 0.5)]
    if relay is not None:
        checks.append(Check("kafka_relay", RelayProgress(relay), required=False))
    return Readiness(
        SERVICE_NAME,
        checks,
        # Where a role-aware engine (a hot standby) tells its role; "leader" otherwise.
        role=lambda: str(getattr(store, "role", "leader")),
        details=lambda: {"head": store.head_position()},
    )
