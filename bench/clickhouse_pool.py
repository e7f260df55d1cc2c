"""``python -m bench.clickhouse_pool``: the store's ClickHouse pool against asynch's own.

Runs the store engine in this process on a scratch database (needs
``eval "$(scripts/infra.sh env)"``), alternating two pools, ``--rounds`` times:

- **asynch**: ``asynch.Pool`` as the store used it before (a PING on every
  returned connection, asynch's per-read deadline on);
- **store**: :class:`store_svc.engine.clickhouse_pool.ClickHousePool` (no
  ping on return, the store's own deadline around each query).

Each round measures 32 concurrent single-event appenders for ``--seconds``
(appends/s and this process's CPU per append, which is the figure that
survives a shared machine) and 100 sequential appends (p50 latency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import asynch

from bench.infra_cleanup import drop_clickhouse_database
from store_svc.engine import (
    ClickHouseConfig,
    ClickHouseStorage,
    EventStore,
    ExpectedVersion,
    NewEvent,
    clickhouse_storage,
)
from store_svc.engine.clickhouse_pool import ClickHousePool


def _pool_factory(name: str, config: ClickHouseConfig) -> Callable[..., Any]:
    """The pool class the storage builds in round ``name`` (it passes its own kwargs)."""
    if name == "store":
        return ClickHousePool

    def asynch_pool(**kwargs: Any) -> Any:
        # As the store configured it before: asynch's own deadline per read and write.
        return asynch.Pool(**{**kwargs, "send_receive_timeout": config.query_timeout})

    return asynch_pool


POOLS = ("asynch", "store")


async def _append_loop(store: EventStore, until: float, counter: list[int]) -> None:
    stream, version = f"pool-bench-{uuid.uuid4().hex}", 0
    now = datetime.now(UTC)
    while time.perf_counter() < until:
        event = NewEvent(uuid.uuid4().hex, "user.login.recorded", b'{"ip":"127.0.0.1"}')
        result = await store.append(
            stream, "user", ExpectedVersion.exact(version), [event], now=now
        )
        version = result.version
        counter[0] += 1


async def _round(pool: str, seconds: float) -> tuple[float, float, float]:
    # A name `bench.infra_cleanup` accepts to drop.
    config = ClickHouseConfig.from_env(database=f"bench_{uuid.uuid4().hex[:10]}")
    # The storage builds its pool on first use, inside `EventStore.open`.
    with mock.patch.object(clickhouse_storage, "ClickHousePool", _pool_factory(pool, config)):
        store = await EventStore.open(ClickHouseStorage(config))
    try:
        counter, warm_up = [0], time.perf_counter() + 1
        await asyncio.gather(*(_append_loop(store, warm_up, [0]) for _ in range(32)))
        cpu, began = time.process_time(), time.perf_counter()
        until = began + seconds
        await asyncio.gather(*(_append_loop(store, until, counter) for _ in range(32)))
        rate = counter[0] / (time.perf_counter() - began)
        cpu_ms = (time.process_time() - cpu) / counter[0] * 1000
        latencies = []
        stream, version = f"pool-bench-seq-{uuid.uuid4().hex}", 0
        for _ in range(100):
            event = NewEvent(uuid.uuid4().hex, "user.login.recorded", b"{}")
            started = time.perf_counter()
            result = await store.append(
                stream, "user", ExpectedVersion.exact(version), [event], now=datetime.now(UTC)
            )
            latencies.append((time.perf_counter() - started) * 1000)
            version = result.version
        return rate, cpu_ms, statistics.median(latencies)
    finally:
        await store.close()
        await drop_clickhouse_database(os.environ, config.database)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in POOLS}
    for i in range(args.rounds):
        for name in POOLS:
            rate, cpu_ms, p50 = await _round(name, args.seconds)
            results[name].append((rate, cpu_ms, p50))
            print(
                f"round {i + 1} {name:6s}: {rate:6.0f} appends/s (32 appenders), "
                f"CPU {cpu_ms:.3f} ms per append, sequential p50 {p50:.1f} ms",
                flush=True,
            )
    for name, rows in results.items():
        rate, cpu_ms, p50 = (statistics.median(column) for column in zip(*rows, strict=True))
        print(
            f"median {name:6s}: {rate:6.0f} appends/s, CPU {cpu_ms:.3f} ms per append, "
            f"sequential p50 {p50:.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
