"""``copy-store --from DIR --to DIR``: the embedded event store (``events.sqlite3``) as a
:class:`~cqrs_admin.copy_store.StorePlace`.

The source file is opened read-only and read at any schema version (the
oldest files lack ``traceparent``: it reads ""). Each folder's key store is
its ``pii-keys.sqlite3``; master keys: ``PII_MASTER_KEY`` if set (for both
folders), else each folder's ``pii-master.key`` (generated in ``--to`` if
absent, as ``make up`` does).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cqrs_admin.copy_store import EventLog, LogWriter, StorePlace
from cqrs_admin.errors import AdminError
from cqrs_admin.writer import sqlite_writer
from pii.settings import KEYS_FILE, PiiSettings, decode_master_key
from store_svc.engine import SqliteStorage
from store_svc.engine.model import PendingEvent, RecordedEvent, decode_claims, from_micros

__all__ = ["SqlitePlace", "sqlite_places"]

SQLITE_FILE: Final = "events.sqlite3"  # StoreSettings.sqlite_path's name in a data folder
# The columns read, in RecordedEvent's order (traceparent and claims follow).
_COLUMNS: Final = (
    "position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "version",
    "event_type",
    "timestamp_us",
    "payload",
    "correlation_id",
    "causation_id",
)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AdminError(f"{path} does not exist: no event store to copy")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    except sqlite3.Error as exc:
        raise AdminError(f"{path}: cannot read: {exc}") from exc
    if not present:
        conn.close()
        raise AdminError(f"{path} has no events table: not an event store")
    return conn


@dataclass(frozen=True, slots=True)
class _FileLog:
    conn: sqlite3.Connection

    def _rows(self) -> Iterator[PendingEvent]:
        present = {row[1] for row in self.conn.execute("PRAGMA table_info(events)")}
        trace = "traceparent" if "traceparent" in present else "''"
        query = (
            f"SELECT {', '.join(_COLUMNS)}, {trace}, claims, releases FROM events ORDER BY position"
        )
        for row in self.conn.execute(query):
            # RecordedEvent's field order; times and payloads converted from storage types.
            record = RecordedEvent._make((*row[:6], from_micros(row[6]), bytes(row[7]), *row[8:11]))
            yield PendingEvent(record, decode_claims(row[11]), decode_claims(row[12]))

    async def events(self) -> AsyncIterator[PendingEvent]:
        for event in self._rows():
            yield event

    async def heads(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT aggregate_id, max(version) FROM events GROUP BY 1")
        return {aggregate_id: int(version) for aggregate_id, version in rows}


@dataclass(frozen=True, slots=True)
class SqlitePlace:
    """A data folder: its ``events.sqlite3`` and ``pii-keys.sqlite3``."""

    folder: Path
    keys: PiiSettings

    def __str__(self) -> str:
        return str(self.folder)

    @property
    def file(self) -> Path:
        return self.folder / SQLITE_FILE

    async def check_source(self) -> None:
        _connect_read_only(self.file).close()
        holder = sqlite_writer(self.file)
        if holder:
            raise AdminError(
                f"a store_svc is writing to {self.file} ({holder}): stop the services "
                "first, or events appended meanwhile would be missing from the copy"
            )

    async def check_target(self, source: StorePlace) -> None:
        if self.file.exists():
            raise AdminError(f"{self.file} exists: copy into a new, empty data folder")
        if isinstance(source, SqlitePlace) and source.folder.resolve() == self.folder.resolve():
            raise AdminError("--from and --to are the same folder")

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[EventLog]:
        with closing(_connect_read_only(self.file)) as conn:
            yield _FileLog(conn)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[LogWriter]:
        self.folder.mkdir(parents=True, exist_ok=True)
        storage = await SqliteStorage.open(self.file)
        try:
            await storage.acquire_writer_lock()  # no store_svc may start on it meanwhile
            yield storage
        finally:
            await storage.close()


def sqlite_places(
    source: Path, target: Path, env: Mapping[str, str]
) -> tuple[SqlitePlace, SqlitePlace]:
    """``--from`` and ``--to`` as places, with the master key ``env`` gives (if any)."""
    given = env.get("PII_MASTER_KEY", "")
    master = decode_master_key(given, "PII_MASTER_KEY") if given else None
    return (
        SqlitePlace(source, PiiSettings(source / KEYS_FILE, master)),
        SqlitePlace(target, PiiSettings(target / KEYS_FILE, master)),
    )
