"""Append throughput: N concurrent single-event appenders, each on its own stream.

    python -m store_svc.engine.bench sqlite [--seconds 8] [--writers 64]
    python -m store_svc.engine.bench clickhouse   # CLICKHOUSE_HOST/USER/PASSWORD; scratch db

Each appender appends at its stream's exact version (what command_svc does),
so every append pays the full path: queue, group commit, durable write, ack.
Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asynch

from store_svc.engine import (
    ClickHouseConfig,
    ClickHouseStorage,
    EventStore,
    ExpectedVersion,
    NewEvent,
    SqliteStorage,
    Storage,
)


async def run(storage: Storage, *, seconds: float, writers: int, delay: float) -> str:
    store = await EventStore.open(storage, batch_max_delay=delay)
    now = datetime.now(UTC)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def writer() -> None:
        stream, version = f"bench-{uuid.uuid4().hex}", 0
        while time.perf_counter() < deadline:
            event = NewEvent(uuid.uuid4().hex, "user.login.recorded", b'{"ip":"127.0.0.1"}')
            started = time.perf_counter()
            result = await store.append(
                stream, "user", ExpectedVersion.exact(version), [event], now=now
            )
            latencies.append(time.perf_counter() - started)
            version = result.version

    began = time.perf_counter()
    try:
        await asyncio.gather(*(writer() for _ in range(writers)))
    finally:
        await store.close()
    elapsed = time.perf_counter() - began
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    return (
        f"{len(latencies)} appends in {elapsed:.1f}s = {len(latencies) / elapsed:,.0f}/s, "
        f"latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"({writers} writers, batch_max_delay {delay * 1000:g} ms)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=("sqlite", "clickhouse"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    args = parser.parse_args()
    options = {"seconds": args.seconds, "writers": args.writers, "delay": args.delay_ms / 1000}
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            storage = SqliteStorage(Path(folder) / "bench.sqlite3")
            print("sqlite:", await run(storage, **options))
        return
    config = ClickHouseConfig.from_env(database=f"bench_{uuid.uuid4().hex[:8]}")
    try:
        print("clickhouse:", await run(ClickHouseStorage(config), **options))
    finally:
        async with (
            asynch.connect(
                host=config.host, port=config.port, user=config.user, password=config.password
            ) as conn,
            conn.cursor() as cursor,
        ):
            await cursor.execute(f"DROP DATABASE IF EXISTS `{config.database}`")


if __name__ == "__main__":
    asyncio.run(main())
