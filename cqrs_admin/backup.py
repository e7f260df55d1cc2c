"""``cqrs-admin backup --out FILE``: an online, consistent backup.

Embedded (SQLite files in ``DATA_DIR``): SQLite's online backup API copies
each file as one snapshot while the services keep writing. The read model is
copied FIRST, then the events: the read model's checkpoint is then never
ahead of the copied events (a projector restarted on the copy never has
applied an event the copied store lacks). The backup's position is the
copied event store's head.

Production (ClickHouse): the head position P is fixed first, then the event
log 1..P is read in position order (the store writes each batch whole and in
order, so every event up to P is there; a gap is refused). The read model is
not copied: a restore rebuilds it from the events (the projector starts at 0).

Neither copies the relay's position (after a restore the relay publishes
from the first event again; consumers skip what they applied), keys or mail.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cqrs_admin import clickhouse
from cqrs_admin.archive import Manifest, write_archive
from cqrs_admin.errors import AdminError
from cqrs_admin.event_lines import to_line
from cqrs_admin.key_files import copy_keys
from cqrs_admin.sqlite_copy import sqlite_snapshot
from cqrs_admin.stack import Stack, code_version
from cqrs_admin.status import Status, collect
from store_svc.engine import ClickHouseStorage

__all__ = ["backup"]

_CHUNK = 5000


def _head(copy: Path) -> int:
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


async def _embedded(stack: Stack, out: Path, work: Path) -> Manifest:
    status = await collect(stack)
    read_model, events = work / "read_model.sqlite3", work / "events.sqlite3"
    await asyncio.to_thread(sqlite_snapshot, stack.query.sqlite_path, read_model)
    await asyncio.to_thread(sqlite_snapshot, stack.store.sqlite_path, events)
    manifest = _manifest(stack, status, await asyncio.to_thread(_head, events))
    files = {"read_model.sqlite3": read_model, "events.sqlite3": events}
    files.update(await asyncio.to_thread(copy_keys, stack, work))  # after the events
    manifest.files.extend(files)
    await asyncio.to_thread(write_archive, out, manifest, files)
    return manifest


async def _production(stack: Stack, out: Path, work: Path) -> Manifest:
    status = await collect(stack)
    ch = stack.store.clickhouse
    async with clickhouse.session(ch) as run:
        rows = await run(
            "backup", f"SELECT max(position) FROM {ch.database}.events_by_position", None
        )
    head = int(rows[0][0])
    lines = work / "events.jsonl"
    storage = await ClickHouseStorage.open(ch)
    try:
        with lines.open("w", encoding="utf-8") as handle:
            after = 0
            while after < head:
                chunk = await storage.read_log(after_position=after, limit=_CHUNK)
                for event in chunk:
                    if event.record.position > head:
                        break
                    if event.record.position != after + 1:
                        raise AdminError(
                            f"the event log has a gap after position {after}: not backed up"
                        )
                    handle.write(to_line(event))
                    after = event.record.position
                if not chunk:
                    raise AdminError(f"the event log ends at {after}, before its head {head}")
    finally:
        await storage.close()
    manifest = _manifest(stack, status, head)
    files = {"events.jsonl": lines}
    files.update(await asyncio.to_thread(copy_keys, stack, work))  # after the events
    manifest.files.extend(files)
    await asyncio.to_thread(write_archive, out, manifest, files)
    return manifest


def _manifest(stack: Stack, status: Status, position: int) -> Manifest:
    versions = {"event_store": status.event_store.schema_version or 0}
    if stack.embedded:
        versions["read_model"] = status.read_model.schema_version or 0
    return Manifest(
        stack="embedded" if stack.embedded else "production",
        position=position,
        created_at=datetime.now(UTC).isoformat(),
        code_version=code_version(),
        schema_versions=versions,
    )


async def backup(stack: Stack, out: Path) -> Manifest:
    """Writes the backup to ``out``; its manifest (the position it holds every event up to)."""
    production = stack.store.backend == "clickhouse" and stack.query.db_backend == "postgres"
    if not (stack.embedded or production):
        raise AdminError(
            "backup supports the embedded stack (both stores SQLite) and the production "
            "stack (ClickHouse events, PostgreSQL read model)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cqrs-backup-") as tmp:
        if stack.embedded:
            return await _embedded(stack, out, Path(tmp))
        return await _production(stack, out, Path(tmp))
