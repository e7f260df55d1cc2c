"""SQLite storage adapter (the embedded default): one database file, WAL, durable commits.

* `position INTEGER PRIMARY KEY` (the rowid: reads by position are a B-tree
  range), `UNIQUE(aggregate_id, version)` (reads by stream, and a second line
  of defence against a lost update), `UNIQUE(event_id)`.
* `journal_mode=WAL` lets readers run beside the writer; `synchronous=FULL`
  fsyncs the WAL at every commit, so an acknowledged append survives a power
  loss.
* One transaction per batch (executemany): all or nothing.
* ``claims`` holds each claim's current owner (PRIMARY KEY (namespace,
  value)), changed in the batch's transaction: heads (the
  ``UNIQUE(aggregate_id, version)`` index) and owners are read by key.
* Writer lock: `fcntl.flock` (exclusive, non-blocking) on `<db>.writer.lock`,
  held for the life of the store. The kernel drops it when the process dies,
  so a crashed writer never blocks its successor.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from service_kit import schema_versions
from service_kit.schema_versions import Migration, SchemaMismatch, SchemaReport
from service_kit.sql_schema import SqlSchema
from store_svc.engine.errors import EventIdsAlreadyStored, StorageUnavailable, WriterLockHeld
from store_svc.engine.model import (
    Claim,
    ClaimDigest,
    EventLocation,
    Lookup,
    PendingEvent,
    PlaintextClaims,
    RecordedEvent,
    Settled,
    SnapshotRecord,
    StorageState,
    apply_claim_changes,
    decode_claims,
    digest_claim_columns,
    encode_claims,
    from_micros,
    to_micros,
)

__all__ = ["MIGRATIONS", "EventStoreSchema", "SqliteStorage", "heads_query", "owners_query"]

_metadata = MetaData()

_events = Table(
    "events",
    _metadata,
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("event_id", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("timestamp_us", Integer, nullable=False),  # microseconds since the epoch, UTC
    Column("payload", LargeBinary, nullable=False),  # opaque (JSON) bytes
    Column("correlation_id", Text, nullable=False, server_default=""),
    Column("causation_id", Text, nullable=False, server_default=""),
    Column("claims", Text, nullable=False, server_default=""),  # '' or JSON [[ns, value]]
    Column("releases", Text, nullable=False, server_default=""),
    # Added after the first release: _ready adds it to an older file.
    Column("traceparent", Text, nullable=False, server_default=""),
    UniqueConstraint("aggregate_id", "version", name="uq_events_stream_version"),
    UniqueConstraint("event_id", name="uq_events_event_id"),
)
# Every column, in table order: write_batch's row tuples follow this order.
_INSERT_EVENTS = (
    f"INSERT INTO {_events.name} ({', '.join(c.name for c in _events.columns)}) "
    f"VALUES ({', '.join('?' for _ in _events.columns)})"
)
Index("ix_events_type_position", _events.c.event_type, _events.c.position)
Index("ix_events_timestamp", _events.c.timestamp_us, _events.c.position)
# Loading claims at open reads only the few rows that carry claim changes.
Index(
    "ix_events_claim_changes",
    _events.c.position,
    sqlite_where=or_(_events.c.claims != "", _events.c.releases != ""),
)

_snapshots = Table(
    "snapshots",
    _metadata,
    Column("aggregate_id", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("schema_version", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("created_at_us", Integer, nullable=False),
)

# Current owner of every held claim: the events' claim changes replayed in
# position order (a release frees only its holder's claim). Kept by
# write_batch in the batch's transaction, so it always agrees with the events.
_claims = Table(
    "claims",
    _metadata,
    Column("namespace", Text, primary_key=True),
    Column("value", Text, primary_key=True),
    Column("aggregate_id", Text, nullable=False),
)
_TAKE_CLAIM = "INSERT OR REPLACE INTO claims (namespace, value, aggregate_id) VALUES (?, ?, ?)"
_RELEASE_CLAIM = "DELETE FROM claims WHERE namespace = ? AND value = ? AND aggregate_id = ?"


async def _baseline(schema: SqlSchema) -> None:
    """Version 1: the tables as they were before versions (a legacy file has them all)."""
    await schema.create_current()


# The schema's history, oldest first. To change the schema: append
# Migration(N + 1, "what", function) and change the tables above to match, so
# that a fresh file (created from the tables) equals a migrated one.
async def _traceparent(schema: SqlSchema) -> None:
    """Version 2: each event's W3C ``traceparent`` (old rows read as "")."""
    await schema.conn.run_sync(_add_missing_columns)


class EventStoreSchema(SqlSchema):
    """The event store's schema adapter; ``claim_digest`` (the key store's) lets
    migration 3 digest an old file's plaintext claims."""

    def __init__(
        self, conn: AsyncConnection, *, description: str, claim_digest: ClaimDigest | None
    ) -> None:
        super().__init__(conn, description=description, marker=_events.name, metadata=[_metadata])
        self.claim_digest = claim_digest


_NEEDS_KEY = "run `cqrs-admin migrate` with the deployment's PII_MASTER_KEY and PII_KEYS_FILE"


async def _claim_digests(schema: SqlSchema) -> None:
    """Version 3: unique claims as keyed digests. A file written before personal data
    was encrypted holds its email claims as plaintext addresses: each becomes its
    digest (so the address is still taken, in any case, and is no longer in the
    claims). Needs the key store's digest (``cqrs-admin migrate`` passes it);
    secure_delete overwrites the old values in the pages (the caller truncates the WAL)."""
    digest = schema.claim_digest if isinstance(schema, EventStoreSchema) else None
    await schema.conn.run_sync(_digest_claim_rows, schema.description, digest)


def _digest_claim_rows(conn: Any, description: str, digest: ClaimDigest | None) -> None:
    rows = conn.exec_driver_sql(
        "SELECT position, claims, releases FROM events WHERE claims != '' OR releases != ''"
    ).all()
    changed = []
    for position, taken, released in rows:
        try:
            after = digest_claim_columns(taken, released, digest)
        except PlaintextClaims:
            raise SchemaMismatch(f"{description} holds claims in clear: {_NEEDS_KEY}") from None
        if after is not None:
            changed.append((*after, position))
    if changed:
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
        conn.exec_driver_sql(
            "UPDATE events SET claims = ?, releases = ? WHERE position = ?", changed
        )


async def _claims_table(schema: SqlSchema) -> None:
    """Version 4: the ``claims`` table of current owners, filled from the events
    (after version 3, so from the digested claims)."""
    await schema.conn.run_sync(_claims.create, checkfirst=True)
    await schema.conn.run_sync(_fill_claims)


MIGRATIONS: tuple[Migration[SqlSchema], ...] = (
    Migration(1, "baseline: events and snapshots", _baseline),
    Migration(2, "traceparent on events (W3C trace context of the request)", _traceparent),
    Migration(
        3, "unique claims as keyed digests (an old file's plaintext addresses)", _claim_digests
    ),
    Migration(4, "claims: current owner per claim, read by key", _claims_table),
)

_EVENT_COLUMNS = (
    _events.c.position,
    _events.c.event_id,
    _events.c.aggregate_id,
    _events.c.aggregate_type,
    _events.c.version,
    _events.c.event_type,
    _events.c.timestamp_us,
    _events.c.payload,
    _events.c.correlation_id,
    _events.c.causation_id,
    _events.c.traceparent,
)
# SQLite's default limit of bound parameters per statement is 32766 (3.32+);
# stay far below it.
_IN_CHUNK = 500


def _record(row: Any) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        event_id=row[1],
        aggregate_id=row[2],
        aggregate_type=row[3],
        version=row[4],
        event_type=row[5],
        timestamp=from_micros(row[6]),
        payload=bytes(row[7]),
        correlation_id=row[8],
        causation_id=row[9],
        traceparent=row[10],
    )


def _add_missing_columns(conn: Any) -> None:
    """Adds to a file made by an older release the event columns it lacks
    (each with its server default, so old rows read as "")."""
    present = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(events)")}
    for column in _events.columns:
        if column.name not in present:
            conn.exec_driver_sql(
                f"ALTER TABLE events ADD COLUMN {column.name} TEXT NOT NULL DEFAULT ''"
            )


def heads_query(count: int) -> str:
    """Heads of `count` streams: a search of the UNIQUE(aggregate_id, version) index."""
    marks = ", ".join("?" for _ in range(count))
    return (
        f"SELECT aggregate_id, max(version) FROM events WHERE aggregate_id IN ({marks}) "
        "GROUP BY aggregate_id"
    )


def owners_query(count: int) -> str:
    """Owners of `count` values of one namespace: a search of the claims' primary key."""
    marks = ", ".join("?" for _ in range(count))
    return f"SELECT value, aggregate_id FROM claims WHERE namespace = ? AND value IN ({marks})"


def _fill_claims(conn: Any) -> None:
    """Rebuilds ``claims`` from the events' claim changes (migration 4; runs once)."""
    owners: dict[Claim, str] = {}
    rows = conn.exec_driver_sql(
        "SELECT aggregate_id, claims, releases FROM events "
        "WHERE claims != '' OR releases != '' ORDER BY position"
    )
    for aggregate_id, taken, released in rows:
        apply_claim_changes(owners, aggregate_id, decode_claims(taken), decode_claims(released))
    conn.exec_driver_sql("DELETE FROM claims")
    if owners:
        conn.exec_driver_sql(
            _TAKE_CLAIM, [(c.namespace, c.value, owner) for c, owner in owners.items()]
        )


def _claim_statements(events: Sequence[PendingEvent]) -> list[tuple[str, list[tuple[str, ...]]]]:
    """The batch's changes to ``claims`` as (statement, rows) runs, in an order that
    gives the same result as applying every event's releases then claims in turn.

    Usually one run of releases then one of claims (at most two executemany
    calls); only if a claim is taken before it is released in the same batch
    does the order matter, and then runs follow the events' order.
    """
    releases: list[tuple[str, ...]] = []
    takes: list[tuple[str, ...]] = []
    taken: set[Claim] = set()
    ordered: list[tuple[str, list[tuple[str, ...]]]] = []
    in_order = False
    for pending in events:
        owner = pending.record.aggregate_id
        for claim in pending.releases:
            in_order = in_order or claim in taken
            releases.append((claim.namespace, claim.value, owner))
            ordered.append((_RELEASE_CLAIM, [releases[-1]]))
        for claim in pending.claims:
            taken.add(claim)
            takes.append((claim.namespace, claim.value, owner))
            ordered.append((_TAKE_CLAIM, [takes[-1]]))
    if in_order:
        return ordered
    return [
        (statement, rows)
        for statement, rows in ((_RELEASE_CLAIM, releases), (_TAKE_CLAIM, takes))
        if rows
    ]


def _lock_file(path: Path) -> IO[str]:
    """Open `path` and flock it exclusively without blocking (BlockingIOError if taken)."""
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        handle.close()
        raise
    # Who holds it, for the message a refused second writer prints.
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n")
    handle.flush()
    return handle


def _unlock_file(handle: IO[str]) -> None:
    # The file stays: deleting it would let two writers lock two different inodes.
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown process"
    except OSError:
        return "unknown process"


class SqliteStorage:
    """Event storage in one SQLite file.

    The constructor only configures; the file and schema are created on first
    use (or by `await SqliteStorage.open(path)`). `call_timeout` bounds every
    storage call in seconds and is also SQLite's busy timeout.

    The schema is created at the code's version in a new file; an existing file
    must be at that version (SchemaMismatch otherwise), unless ``migrate`` is
    set (``cqrs-admin migrate``): then pending migrations are applied.
    `schema_report` says what was found and done.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        call_timeout: float = 30.0,
        pool_size: int = 4,
        migrate: bool = False,
        claim_digest: ClaimDigest | None = None,
    ) -> None:
        self._path = Path(path).absolute()
        self._lock_path = self._path.with_name(self._path.name + ".writer.lock")
        self._timeout = call_timeout
        self._lock_handle: IO[str] | None = None
        self._schema_ready = False
        self._migrate = migrate
        self._claim_digest = claim_digest
        self.schema_report: SchemaReport | None = None
        self._closed = False
        self._schema_lock = asyncio.Lock()
        self._engine: AsyncEngine = create_async_engine(
            f"sqlite+aiosqlite:///{self._path}",
            pool_size=pool_size,
            max_overflow=pool_size,
            # Every use ends its own transaction (begin() commits or rolls
            # back; connect() rolls back on close): a reset on return would
            # be a second, empty rollback, one more thread hop per call.
            pool_reset_on_return=None,
        )
        busy_ms = int(call_timeout * 1000)

        @event.listens_for(self._engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            # Per-connection settings (journal_mode is persistent, the others are not).
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        call_timeout: float = 30.0,
        pool_size: int = 4,
        migrate: bool = False,
        claim_digest: ClaimDigest | None = None,
    ) -> SqliteStorage:
        """Configure and create (or check, or migrate) the database file and schema now;
        ``claim_digest``: see migration 3."""
        storage = cls(
            path,
            call_timeout=call_timeout,
            pool_size=pool_size,
            migrate=migrate,
            claim_digest=claim_digest,
        )
        try:
            await storage._ready()
        except BaseException:
            await storage.close()
            raise
        return storage

    async def _ready(self) -> None:
        """Create the file's folder and the schema once, or check its version."""
        if self._closed:
            # SQLAlchemy would silently open a new pool after dispose().
            raise StorageUnavailable(f"SQLite storage {self._path} is closed")
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                async with asyncio.timeout(self._timeout), self._engine.begin() as conn:
                    schema = EventStoreSchema(
                        conn,
                        description=f"SQLite event store {self._path}",
                        claim_digest=self._claim_digest,
                    )
                    run = schema_versions.migrate if self._migrate else schema_versions.prepare
                    self.schema_report = await run(schema, MIGRATIONS)
                if self.schema_report.applied:
                    # Pages a migration rewrote (old claims) leave the WAL for the file.
                    async with self._engine.connect() as conn:
                        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
                raise self._failure("create schema", exc) from exc
            self._schema_ready = True

    @property
    def path(self) -> Path:
        return self._path

    def _failure(self, operation: str, exc: BaseException) -> StorageUnavailable:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc}"
        return StorageUnavailable(f"SQLite {operation} on {self._path} {reason}")

    @asynccontextmanager
    async def _transaction(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on exit; errors become StorageUnavailable."""
        await self._ready()
        try:
            async with asyncio.timeout(self._timeout), self._engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
            raise self._failure(operation, exc) from exc

    async def _fetch(self, operation: str, statement: Select[Any]) -> Sequence[Any]:
        await self._ready()
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                result = await conn.execute(statement)
                rows: Sequence[Any] = result.all()
                return rows
        except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
            raise self._failure(operation, exc) from exc

    # --- writer lock ----------------------------------------------------------

    async def acquire_writer_lock(self) -> None:
        if self._lock_handle is not None:
            raise WriterLockHeld(
                f"SQLite event store {self._path}: this storage already holds the writer "
                f"lock {self._lock_path}; another EventStore is running on it"
            )
        await self._ready()
        try:
            self._lock_handle = _lock_file(self._lock_path)
        except BlockingIOError:
            raise WriterLockHeld(
                f"SQLite event store {self._path}: the writer lock {self._lock_path} is held "
                f"by {_lock_holder(self._lock_path)}; another EventStore writer is running "
                "on this database"
            ) from None
        except OSError as exc:
            raise self._failure(f"locking {self._lock_path}", exc) from exc

    async def release_writer_lock(self) -> None:
        handle, self._lock_handle = self._lock_handle, None
        if handle is not None:
            _unlock_file(handle)

    # --- state and writes -------------------------------------------------------

    async def load_state(self) -> StorageState:
        # A failed SQLite transaction rolls back completely, so there is never
        # a half-written batch to settle.
        return StorageState(last_position=await self._last_position())

    async def _last_position(self) -> int:
        rows = await self._fetch(
            "read last position", select(func.coalesce(func.max(_events.c.position), 0))
        )
        return int(rows[0][0])

    async def lookup(self, aggregate_ids: Sequence[str], claims: Sequence[Claim]) -> Lookup:
        heads: dict[str, int] = {}
        owners: dict[Claim, str] = {}
        ids = list(dict.fromkeys(aggregate_ids))
        by_namespace: dict[str, list[str]] = {}
        for claim in dict.fromkeys(claims):
            by_namespace.setdefault(claim.namespace, []).append(claim.value)
        await self._ready()
        try:
            # One read transaction: heads and owners as of one commit.
            async with asyncio.timeout(self._timeout), self._engine.connect() as conn:
                for start in range(0, len(ids), _IN_CHUNK):
                    chunk = ids[start : start + _IN_CHUNK]
                    result = await conn.exec_driver_sql(heads_query(len(chunk)), tuple(chunk))
                    head_rows: Sequence[Any] = result.all()
                    heads.update((row[0], int(row[1])) for row in head_rows)
                for namespace, values in by_namespace.items():
                    for start in range(0, len(values), _IN_CHUNK):
                        chunk = values[start : start + _IN_CHUNK]
                        result = await conn.exec_driver_sql(
                            owners_query(len(chunk)), (namespace, *chunk)
                        )
                        owner_rows: Sequence[Any] = result.all()
                        owners.update((Claim(namespace, row[0]), row[1]) for row in owner_rows)
        except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
            raise self._failure("look up heads and claims", exc) from exc
        return Lookup(heads, owners)

    async def settle_batch(self, events: Sequence[PendingEvent]) -> Settled:
        # One transaction per batch: it committed entirely or not at all. Its
        # event ids say which (UNIQUE(event_id): they are nowhere else).
        if not events:
            return Settled(landed=False, last_position=await self._last_position())
        first = events[0].record
        found = await self.find_event_ids([first.event_id])
        location = found.get(first.event_id)
        landed = location is not None and location.position == first.position
        return Settled(landed=landed, last_position=await self._last_position())

    @property
    def unique_event_ids(self) -> bool:
        return True  # UNIQUE(event_id): a stored id fails the whole INSERT

    async def write_batch(self, events: Sequence[PendingEvent]) -> None:
        if not events:
            return
        rows = [
            (  # the order of _INSERT_EVENTS (the table's)
                p.record.position,
                p.record.event_id,
                p.record.aggregate_id,
                p.record.aggregate_type,
                p.record.version,
                p.record.event_type,
                to_micros(p.record.timestamp),
                p.record.payload,
                p.record.correlation_id,
                p.record.causation_id,
                encode_claims(p.claims),
                encode_claims(p.releases),
                p.record.traceparent,
            )
            for p in events
        ]
        async with self._transaction("write batch") as conn:
            try:
                # Plain SQL: the hot path skips SQLAlchemy's per-row parameter
                # processing (every value here is already a driver type).
                await conn.exec_driver_sql(_INSERT_EVENTS, rows)
                for statement, claim_rows in _claim_statements(events):
                    await conn.exec_driver_sql(statement, claim_rows)
            except IntegrityError as exc:
                if "events.event_id" in str(exc.orig):  # UNIQUE(event_id), not the version
                    raise EventIdsAlreadyStored(str(exc.orig)) from exc  # rolled back
                raise

    async def find_event_ids(self, event_ids: Sequence[str]) -> dict[str, EventLocation]:
        found: dict[str, EventLocation] = {}
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), _IN_CHUNK):
            rows = await self._fetch(
                "find event ids",
                select(
                    _events.c.event_id,
                    _events.c.aggregate_id,
                    _events.c.version,
                    _events.c.position,
                ).where(_events.c.event_id.in_(unique[start : start + _IN_CHUNK])),
            )
            for event_id, aggregate_id, version, position in rows:
                found[event_id] = EventLocation(event_id, aggregate_id, version, position)
        return found

    # --- reads ------------------------------------------------------------------

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        from_version: int,
        to_version: int | None,
        until: datetime | None,
        limit: int | None,
    ) -> list[RecordedEvent]:
        statement = select(*_EVENT_COLUMNS).where(
            _events.c.aggregate_id == aggregate_id, _events.c.version >= from_version
        )
        if to_version is not None:
            statement = statement.where(_events.c.version <= to_version)
        if until is not None:
            statement = statement.where(_events.c.timestamp_us <= to_micros(until))
        statement = statement.order_by(_events.c.version)
        if limit is not None:
            statement = statement.limit(limit)
        return [_record(row) for row in await self._fetch("read stream", statement)]

    @staticmethod
    def _filters(
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if event_types:
            conditions.append(_events.c.event_type.in_(list(event_types)))
        if aggregate_id is not None:
            conditions.append(_events.c.aggregate_id == aggregate_id)
        if since is not None:
            conditions.append(_events.c.timestamp_us >= to_micros(since))
        if until is not None:
            conditions.append(_events.c.timestamp_us <= to_micros(until))
        return conditions

    async def read_all(
        self,
        *,
        after_position: int,
        limit: int,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[RecordedEvent]:
        statement = (
            select(*_EVENT_COLUMNS)
            .where(
                _events.c.position > after_position,
                *self._filters(event_types, aggregate_id, since, until),
            )
            .order_by(_events.c.position)
            .limit(limit)
        )
        return [_record(row) for row in await self._fetch("read all", statement)]

    async def count(
        self,
        *,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        statement = select(func.count()).select_from(_events)
        conditions = self._filters(event_types, aggregate_id, since, until)
        if conditions:
            statement = statement.where(*conditions)
        rows = await self._fetch("count", statement)
        return int(rows[0][0])

    async def aggregate_ids(self, *, after: str, limit: int) -> list[str]:
        statement = (
            select(_events.c.aggregate_id)
            .where(_events.c.aggregate_id > after)
            .distinct()
            .order_by(_events.c.aggregate_id)
            .limit(limit)
        )
        return [row[0] for row in await self._fetch("list aggregate ids", statement)]

    # --- snapshots --------------------------------------------------------------

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        async with self._transaction("save snapshot") as conn:
            await conn.execute(
                insert(_snapshots).prefix_with("OR REPLACE"),
                {
                    "aggregate_id": snapshot.aggregate_id,
                    "version": snapshot.version,
                    "schema_version": snapshot.schema_version,
                    "state": snapshot.state,
                    "created_at_us": to_micros(snapshot.created_at),
                },
            )

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(
            "read snapshot",
            select(
                _snapshots.c.version,
                _snapshots.c.schema_version,
                _snapshots.c.state,
                _snapshots.c.created_at_us,
            )
            .where(_snapshots.c.aggregate_id == aggregate_id)
            .order_by(_snapshots.c.version.desc())
            .limit(1),
        )
        if not rows:
            return None
        version, schema_version, state, created_at_us = rows[0]
        return SnapshotRecord(
            aggregate_id, version, schema_version, bytes(state), from_micros(created_at_us)
        )

    async def close(self) -> None:
        self._closed = True
        await self.release_writer_lock()
        await self._engine.dispose()
