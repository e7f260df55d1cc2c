"""Scenario 8: our store engine against the ``eventsourcing`` library, same workload.

Both sides run in this process on their own SQLite file, one after the
other in the same run, with the same durability: WAL and
``synchronous=FULL`` (our engine sets both; eventsourcing sets WAL and
leaves ``synchronous`` at SQLite's default, which is FULL in this build:
read back from its connection and reported; the row is an ERROR if it is
not FULL). Same workload: 64 streams, each saved one event at a time
(the same ``user.login.recorded`` JSON payload bytes), then every stream
read back whole, one stream at a time.

Layers compared: our ``EventStore`` (what store_svc serves) against
eventsourcing's ``SQLiteApplicationRecorder`` (its event store layer, with
the same global ordering role): neither side pays for gRPC or an aggregate
layer. Each side runs its natural concurrency model: ours 64 asyncio tasks
(group commit), eventsourcing 64 threads (its pool) and, since a lock-bound
library may do better alone, also 1 thread; the better eventsourcing figure
is the one we are compared with. Target: our append rate >= 2 x theirs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from bench.context import RunContext
from bench.measure import CONCURRENCY
from bench.report import Row, Target
from store_svc.engine import EventStore, ExpectedVersion, NewEvent, SqliteStorage

__all__ = ["run"]

TARGET = Target(">=", 2.0, text=">= 2.00 x eventsourcing")
PAYLOAD = json.dumps({"client_address": "127.0.0.1"}).encode()
TOPIC = "user.login.recorded"
# The deployed defaults of store_svc (STORE_BATCH_MAX_EVENTS / _DELAY_MS).
_BATCH_MAX_EVENTS = 500
_BATCH_MAX_DELAY = 0.002
SYNCHRONOUS_FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def _durability(path: Path) -> dict[str, Any]:
    """journal_mode and synchronous as a fresh connection to ``path`` reports them."""
    with sqlite3.connect(path) as conn:
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous_default": conn.execute("PRAGMA synchronous").fetchone()[0],
        }


async def _ours(path: Path, *, streams: int, per_stream: int) -> dict[str, Any]:
    storage = await SqliteStorage.open(path)
    store = await EventStore.open(
        storage, batch_max_events=_BATCH_MAX_EVENTS, batch_max_delay=_BATCH_MAX_DELAY
    )
    ids = [str(uuid.uuid4()) for _ in range(streams)]
    try:

        async def writer(stream: str) -> None:
            for version in range(per_stream):
                await store.append(
                    stream,
                    "user",
                    ExpectedVersion.exact(version),
                    [NewEvent(str(uuid.uuid4()), TOPIC, PAYLOAD)],
                    now=datetime.now(UTC),
                )

        started = time.perf_counter()
        await asyncio.gather(*(writer(s) for s in ids))
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for stream in ids:
            events = await store.read_stream(stream)
            if len(events) != per_stream or events[0].payload != PAYLOAD:
                raise AssertionError(f"read {len(events)} events of {stream}")
        read_seconds = time.perf_counter() - started
    finally:
        await store.close()
    total = streams * per_stream
    return {
        "writers": streams,
        "appends_per_s": total / write_seconds,
        "read_events_per_s": total / read_seconds,
        # Set by the adapter on every connection it opens (store_svc/engine/sqlite_storage.py).
        "synchronous": SYNCHRONOUS_FULL,
    }


def _theirs(path: Path, *, streams: int, per_stream: int, threads: int) -> dict[str, Any]:
    datastore = SQLiteDatastore(str(path), pool_size=threads, max_overflow=0, pool_timeout=60.0)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    ids = [uuid.uuid4() for _ in range(streams)]
    try:
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("PRAGMA synchronous")
            synchronous = cursor.fetchone()[0]

        def writer(stream: uuid.UUID) -> None:
            for version in range(1, per_stream + 1):
                recorder.insert_events(
                    [
                        StoredEvent(
                            originator_id=stream,
                            originator_version=version,
                            topic=TOPIC,
                            state=PAYLOAD,
                        )
                    ]
                )

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(writer, ids))
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for stream in ids:
            events = recorder.select_events(stream)
            if len(events) != per_stream or events[0].state != PAYLOAD:
                raise AssertionError(f"read {len(events)} events of {stream}")
        read_seconds = time.perf_counter() - started
    finally:
        datastore.close()
    total = streams * per_stream
    return {
        "writers": threads,
        "appends_per_s": total / write_seconds,
        "read_events_per_s": total / read_seconds,
        "synchronous": synchronous,
    }


async def _round(root: Path, per_stream: int) -> dict[str, dict[str, Any]]:
    """One round: ours, eventsourcing with 64 threads, with 1 thread; fresh files each."""
    await asyncio.to_thread(root.mkdir)
    ours = await _ours(root / "ours.sqlite3", streams=CONCURRENCY, per_stream=per_stream)
    theirs_many = await asyncio.to_thread(
        _theirs,
        root / "es64.sqlite3",
        streams=CONCURRENCY,
        per_stream=per_stream,
        threads=CONCURRENCY,
    )
    theirs_one = await asyncio.to_thread(
        _theirs, root / "es1.sqlite3", streams=CONCURRENCY, per_stream=per_stream, threads=1
    )
    files = {name: _durability(root / f"{name}.sqlite3") for name in ("ours", "es64", "es1")}
    return {"ours": ours, "es64": theirs_many, "es1": theirs_one, "files": files}


def _best(result: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    return max(result["es64"], result["es1"], key=lambda r: float(r[key]))


async def run(ctx: RunContext) -> list[Row]:
    per_stream = ctx.budget.peer_events_per_stream
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as folder:
        rounds = [
            await _round(Path(folder) / f"round{n}", per_stream) for n in range(ctx.budget.rounds)
        ]
    ours_appends = statistics.median(r["ours"]["appends_per_s"] for r in rounds)
    append_ratio = statistics.median(
        r["ours"]["appends_per_s"] / _best(r, "appends_per_s")["appends_per_s"] for r in rounds
    )
    ours_reads = statistics.median(r["ours"]["read_events_per_s"] for r in rounds)
    read_ratio = statistics.median(
        r["ours"]["read_events_per_s"] / _best(r, "read_events_per_s")["read_events_per_s"]
        for r in rounds
    )
    synchronous = {r[side]["synchronous"] for r in rounds for side in ("es64", "es1")}
    error = (
        ""
        if synchronous == {SYNCHRONOUS_FULL}
        else f"eventsourcing ran with synchronous={sorted(synchronous)}, not FULL"
    )
    details = {"rounds": rounds, "events_per_stream": per_stream, "payload_bytes": len(PAYLOAD)}
    return [
        Row(
            8,
            ctx.stack.name,
            "in-process SQLite appends vs eventsourcing (best of 64/1 threads)",
            ours_appends,
            "appends/s",
            ratio=append_ratio,
            ratio_to="eventsourcing",
            target=TARGET,
            details=details,
            error=error,
        ),
        Row(
            8,
            ctx.stack.name,
            "in-process SQLite stream reads vs eventsourcing",
            ours_reads,
            "events/s",
            ratio=read_ratio,
            ratio_to="eventsourcing",
            details=details,
        ),
    ]
