"""The engine's write-through stream cache answers exactly as storage does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store_svc.engine import EventStore, ExpectedVersion, NewEvent, SqliteStorage

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def login() -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "user.login.recorded", b'{"client_address":""}')


async def test_cached_reads_equal_storage_reads(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    cached = await EventStore.open(SqliteStorage(path), stream_cache_events=1000)
    stream = str(uuid.uuid4())
    times = [T0 + timedelta(seconds=s) for s in (0, 10, 5, 20, 30)]  # clocks may go back
    for version, moment in enumerate(times):
        await cached.append(stream, "user", ExpectedVersion.exact(version), [login()], now=moment)
        if version == 1:
            await cached.read_stream(stream)  # cached from here on: later appends write through
    queries = [
        {},
        {"from_version": 2},
        {"to_version": 3},
        {"from_version": 2, "to_version": 4, "limit": 2},
        {"until": T0 + timedelta(seconds=12)},
        {"until": T0 + timedelta(seconds=7)},
        {"from_version": 3, "until": T0 + timedelta(seconds=25)},
        {"from_version": 9},
        {"limit": 0},
    ]
    from_cache = [await cached.read_stream(stream, **q) for q in queries]  # type: ignore[arg-type]
    await cached.close()
    uncached = await EventStore.open(SqliteStorage(path), stream_cache_events=0)
    try:
        from_storage = [await uncached.read_stream(stream, **q) for q in queries]  # type: ignore[arg-type]
    finally:
        await uncached.close()
    assert from_cache == from_storage
    assert [e.version for e in from_cache[4]] == [1, 2, 3]  # stops at the first later event
