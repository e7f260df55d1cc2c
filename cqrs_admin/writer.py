"""Whether an event store writer (store_svc) is running on the configured store."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

from store_svc.engine.clickhouse_storage import ClickHouseConfig, QueryRunner

__all__ = ["clickhouse_leases", "sqlite_writer"]


def sqlite_writer(database: Path) -> str | None:
    """Who holds the SQLite writer lock (``<db>.writer.lock``), or None if nobody does.

    The lock is an ``flock``: trying it without blocking is the only reliable
    test (the file stays after its holder exits)."""
    lock_path = database.with_name(database.name + ".writer.lock")
    if not lock_path.exists():
        return None
    with lock_path.open("r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown process"
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


async def clickhouse_leases(config: ClickHouseConfig, run: QueryRunner) -> list[tuple[str, str]]:
    """Every lease owner of the ClickHouse writer lease and its state: ``leader``
    (a fresh heartbeat, not released), ``released`` or ``expired``, leader first."""
    db = config.database
    exists = await run("read writer lease", f"EXISTS TABLE {db}.writer_lease", None)
    if not exists[0][0]:
        return []
    rows = await run(
        "read writer lease",
        f"SELECT owner, argMax(heartbeat, seq), argMax(released, seq), toUInt64(now()) "
        f"FROM {db}.writer_lease GROUP BY owner ORDER BY argMax(heartbeat, seq) DESC",
        None,
    )
    ttl = config.lease_ttl
    out: list[tuple[str, str]] = []
    for owner, heartbeat, released, now in rows:
        if released:
            state = "released"
        elif now - heartbeat < ttl:
            state = "leader"
        else:
            state = f"expired {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(heartbeat))}"
        out.append((str(owner), state))
    out.sort(key=lambda item: item[1] != "leader")
    return out
