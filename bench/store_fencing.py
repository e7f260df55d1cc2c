"""What fencing costs the ClickHouse writer: engine appends/s with and without the check.

The fence check is one ``SELECT max(...)`` over the (tiny) lease tables after each
batch's INSERTs, before the batch is acknowledged. This bench runs the engine in
process on the ClickHouse named by CLICKHOUSE_HOST (``eval "$(scripts/infra.sh env)"``),
64 concurrent appenders on distinct streams, and alternates rounds with the check on
and with it replaced by a no-op (unsafe, for comparison only), so that both see the
same machine load. Prints appends/s and batches/s of each, and their ratio.

Reproduce: ``.venv/bin/python -m bench.store_fencing [--seconds 5 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asynch

from store_svc.engine import ClickHouseConfig, ClickHouseStorage, EventStore, ExpectedVersion
from store_svc.engine.model import NewEvent

_APPENDERS = 64


async def _rate(store: EventStore, seconds: float) -> tuple[float, float]:
    """(appends/s, batches/s) of single-event appends by _APPENDERS closed-loop clients."""
    batches = 0

    def count(_size: int) -> None:
        nonlocal batches
        batches += 1

    store._on_batch = count
    done = 0
    deadline = time.monotonic() + seconds

    async def appender() -> None:
        nonlocal done
        stream = f"bench-{uuid.uuid4().hex}"
        while time.monotonic() < deadline:
            event = NewEvent(str(uuid.uuid4()), "bench.happened", b"{}", (), ())
            await store.append(stream, "bench", ExpectedVersion.ANY, [event], now=datetime.now(UTC))
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(appender() for _ in range(_APPENDERS)))
    elapsed = time.monotonic() - started
    return done / elapsed, batches / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant")
    args = parser.parse_args()
    if not os.environ.get("CLICKHOUSE_HOST"):
        raise SystemExit('CLICKHOUSE_HOST is not set: eval "$(scripts/infra.sh env)" first')
    config = ClickHouseConfig.from_env(database=f"bench_fencing_{uuid.uuid4().hex[:8]}")
    storage = ClickHouseStorage(config)
    store = await EventStore.open(storage)
    checked = storage._confirm_epoch

    async def unchecked(step: str) -> None:
        return None

    figures: dict[str, list[tuple[float, float]]] = {"fenced": [], "no check": []}
    try:
        await _rate(store, 1.0)  # warm-up
        for _ in range(args.rounds):
            for name, runs in figures.items():
                variant = checked if name == "fenced" else unchecked
                storage._confirm_epoch = variant  # type: ignore[method-assign]
                runs.append(await _rate(store, args.seconds))
    finally:
        storage._confirm_epoch = checked  # type: ignore[method-assign]
        await store.close()
        async with (
            asynch.connect(
                host=config.host,
                port=config.port,
                user=config.user,
                password=config.password,
            ) as conn,
            conn.cursor() as cursor,
        ):
            await cursor.execute(f"DROP DATABASE IF EXISTS {config.database}")
    load = os.getloadavg()[0]
    print(f"ClickHouse {config.host}:{config.port}, {_APPENDERS} appenders, load avg {load:.2f}")
    medians = {}
    for name, runs in figures.items():
        appends = sorted(rate for rate, _ in runs)[len(runs) // 2]
        batches = sorted(rate for _, rate in runs)[len(runs) // 2]
        medians[name] = appends
        print(f"{name:>9}: {appends:8,.0f} appends/s  {batches:6,.1f} batches/s (median)")
    print(f"fenced / no check: {medians['fenced'] / medians['no check']:.2f} x")


if __name__ == "__main__":
    asyncio.run(main())
