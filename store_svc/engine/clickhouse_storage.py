"""ClickHouse storage adapter (asynch, native protocol). Works on 18.16 and current releases.

Tables (database from the config, `events` by default), all plain MergeTree
with `PARTITION BY tuple()`, so that one batch INSERT is one block, one part,
visible all at once:

* ``events``             ORDER BY (aggregate_id, version): reads by stream.
  Keeps the seed's user-facing columns (event_type, aggregate_id, version,
  timestamp, payload), so the seed's ad-hoc queries keep working.
* ``events_by_position`` ORDER BY position, same columns: the global log,
  subscriptions and filtered reads.
* ``event_ids``          ORDER BY event_id: idempotency / duplicate-id lookups.
* ``snapshots``          ORDER BY (aggregate_id, version).
* ``writer_lease``       ReplacingMergeTree(seq) ORDER BY owner: the writer lease.
* ``writer_epochs``      ORDER BY epoch: the fence each lease epoch recorded
  (see clickhouse_fencing: every row carries the ``epoch`` of its writer).
* ``claims``             ORDER BY (namespace, value, position): one row per
  claim change (``held`` 1: taken, 0: released), at its event's position and
  epoch, so that a claim's owner is read by key and fenced like the events.
  Stream heads are read by key from ``events`` (its key starts with
  aggregate_id): nothing is loaded at open.

18.16 has no DateTime64, so `timestamp` is DateTime('UTC') (seconds, for
humans) and `timestamp_us` (UInt64 microseconds) is what ordering and filters
use. ClickHouse has no transactions: a batch is three INSERTs (run
concurrently), which may land partly, or late. The engine reloads state after
any failed write, and every `load_state` starts a new lease epoch and records
its fence first, so a failed INSERT that lands late is cut off by the fence
(clickhouse_fencing); it then copies visible rows missing from one table into
the others (`_reconcile`), so the tables agree before the next batch is
written. Reads deduplicate (`ORDER BY ..., epoch DESC LIMIT 1 BY position`),
so a row that was ever written twice is never returned twice.

Writer lock: a lease row per owner, renewed every `lease_heartbeat` seconds
with the SERVER's clock. A writer refuses to open while another owner's
lease is fresh (< `lease_ttl`) and refuses to write once it has not renewed
for `lease_ttl - margin`. Timing alone cannot stop a paused writer, so the
lease is also a fencing token: a batch is acknowledged only if, after its
INSERTs returned, no other owner holds a lease epoch >= ours; otherwise the
writer steps down (UNAVAILABLE, nothing more written). If its own lease lapsed
or was superseded, it writes nothing until it has taken a new lease (a new
epoch, only if nobody else holds one) AND the engine has reloaded its state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asynch

from service_kit import schema_versions
from service_kit.schema_versions import MIGRATIONS_TABLE, Migration, SchemaMismatch, SchemaReport
from store_svc.engine.clickhouse_fencing import Fence, add_epoch_columns, visible_rows
from store_svc.engine.clickhouse_pool import ClickHousePool
from store_svc.engine.errors import StorageUnavailable, WriterLockHeld
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

__all__ = ["MIGRATIONS", "ClickHouseConfig", "ClickHouseSchema", "ClickHouseStorage"]

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IN_CHUNK = 1000
_DEFAULT_PORT = 9000

# Column list shared by `events` and `events_by_position` (same order in DDL,
# INSERT and the reconciling INSERT ... SELECT).
_EVENT_COLUMNS_DDL = """
    position UInt64,
    event_id String,
    aggregate_id String,
    aggregate_type String,
    version UInt64,
    event_type String,
    timestamp DateTime('UTC'),
    timestamp_us UInt64,
    payload String,
    correlation_id String,
    causation_id String,
    claims String,
    releases String,
    epoch UInt64,
    traceparent String DEFAULT ''
"""
_EVENT_COLUMNS = (
    "position, event_id, aggregate_id, aggregate_type, version, event_type, timestamp, "
    "timestamp_us, payload, correlation_id, causation_id, claims, releases, epoch, traceparent"
)
_SELECT_EVENT = (
    "position, event_id, aggregate_id, aggregate_type, version, event_type, timestamp_us, "
    "payload, correlation_id, causation_id, traceparent"
)


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    """Connection and lease settings. Times in seconds."""

    host: str = "127.0.0.1"
    port: int = _DEFAULT_PORT
    user: str = "default"
    password: str = field(default="", repr=False)
    database: str = "events"
    connect_timeout: float = 5.0
    query_timeout: float = 15.0  # bounds every call, including waiting for a connection
    load_timeout: float = 300.0  # bounds each query of load_state (full scans at open)
    pool_size: int = 4
    lease_ttl: float = 15.0
    lease_heartbeat: float = 3.0
    owner_id: str = ""  # "" = host:pid:random, unique per storage instance

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.database):
            raise ValueError(f"ClickHouse database name {self.database!r} is not an identifier")
        if self.lease_heartbeat * 2 >= self.lease_ttl:
            raise ValueError("lease_heartbeat must be less than half of lease_ttl")

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_host: str = "",
        **overrides: Any,
    ) -> ClickHouseConfig:
        """Read CLICKHOUSE_HOST (host[:port]; ``default_host`` when unset, else it is
        required), CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, CLICKHOUSE_DB; a bad value
        fails with the variable's name in the message."""
        env = os.environ if environ is None else environ
        address = env.get("CLICKHOUSE_HOST", "").strip() or default_host
        if not address:
            raise ValueError("CLICKHOUSE_HOST is not set (expected host:port)")
        host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "")
        try:
            port = int(port_text) if port_text else _DEFAULT_PORT
        except ValueError:
            raise ValueError(f"CLICKHOUSE_HOST={address!r}: port is not a number") from None
        database = env.get("CLICKHOUSE_DB", "events") or "events"
        if not _IDENTIFIER.match(database):
            raise ValueError(f"CLICKHOUSE_DB={database!r} is not a valid database name")
        config = cls(
            host=host or "127.0.0.1",
            port=port,
            user=env.get("CLICKHOUSE_USER", "default") or "default",
            password=env.get("CLICKHOUSE_PASSWORD", ""),
            database=database,
        )
        return replace(config, **overrides) if overrides else config


_ENGINE = "ENGINE = MergeTree() PARTITION BY tuple()"

QueryParams = dict[str, Any] | list[tuple[Any, ...]] | None
QueryRunner = Callable[[str, str, QueryParams], Awaitable[list[tuple[Any, ...]]]]
"""Runs one statement: (operation for messages, statement, %(name)s parameters, or the
rows of an ``INSERT ... VALUES``) -> rows."""


def _table_ddl(db: str) -> tuple[str, ...]:
    """The current tables (CREATE ... IF NOT EXISTS), in database ``db``."""
    return (
        f"CREATE TABLE IF NOT EXISTS {db}.events ({_EVENT_COLUMNS_DDL}) "
        f"{_ENGINE} ORDER BY (aggregate_id, version)",
        f"CREATE TABLE IF NOT EXISTS {db}.events_by_position ({_EVENT_COLUMNS_DDL}) "
        f"{_ENGINE} ORDER BY position",
        f"CREATE TABLE IF NOT EXISTS {db}.event_ids (event_id String, aggregate_id String, "
        f"version UInt64, position UInt64, epoch UInt64) {_ENGINE} ORDER BY event_id",
        f"CREATE TABLE IF NOT EXISTS {db}.snapshots (aggregate_id String, version UInt64, "
        f"schema_version UInt32, state String, created_at DateTime('UTC'), "
        f"created_at_us UInt64, epoch UInt64) {_ENGINE} ORDER BY (aggregate_id, version)",
        f"CREATE TABLE IF NOT EXISTS {db}.writer_lease (owner String, acquired UInt64, "
        f"heartbeat UInt64, released UInt8, seq UInt64, epoch UInt64) "
        f"ENGINE = ReplacingMergeTree(seq) ORDER BY owner",
        _WRITER_EPOCHS_DDL.format(db=db),
        _CLAIMS_DDL.format(db=db),
    )


_CLAIMS_DDL = (
    "CREATE TABLE IF NOT EXISTS {db}.claims (namespace String, value String, "
    "aggregate_id String, held UInt8, position UInt64, epoch UInt64) "
    + _ENGINE
    + " ORDER BY (namespace, value, position)"
)
_INSERT_CLAIMS = (
    "INSERT INTO {db}.claims (namespace, value, aggregate_id, held, position, epoch) VALUES"
)
_WRITER_EPOCHS_DDL = (
    "CREATE TABLE IF NOT EXISTS {db}.writer_epochs (epoch UInt64, owner String, "
    "start_position UInt64, recorded DateTime('UTC')) " + _ENGINE + " ORDER BY epoch"
)


class ClickHouseSchema:
    """The schema runner's adapter for the event store's ClickHouse database.

    ClickHouse has no transactions: a migration's statements and its version
    row are separate, so every migration must be safe to run again (a run
    that failed between them repeats it): ``CREATE TABLE IF NOT EXISTS``, and
    :meth:`add_column` (18.16 has no ``ADD COLUMN IF NOT EXISTS``).
    """

    def __init__(
        self, config: ClickHouseConfig, run: QueryRunner, claim_digest: ClaimDigest | None = None
    ) -> None:
        self.run = run  # run(operation, statement, params) -> rows
        self.db = config.database
        self.claim_digest = claim_digest  # the key store's: migration 4
        self._description = f"ClickHouse event store {config.host}:{config.port}/{self.db}"

    @property
    def description(self) -> str:
        return self._description

    async def found_version(self) -> int | None:
        operation = "read schema version"
        exists = await self.run(operation, f"EXISTS TABLE {self.db}.{MIGRATIONS_TABLE}", None)
        if exists[0][0]:
            rows = await self.run(
                operation, f"SELECT max(version) FROM {self.db}.{MIGRATIONS_TABLE}", None
            )
            return int(rows[0][0])
        legacy = await self.run(operation, f"EXISTS TABLE {self.db}.events", None)
        return 0 if legacy[0][0] else None

    async def add_column(self, table: str, column: str, definition: str) -> None:
        """``ALTER TABLE <table> ADD COLUMN <column> <definition>`` unless it exists."""
        present = await self.run(
            "read columns",
            "SELECT count() FROM system.columns "
            "WHERE database = %(db)s AND table = %(table)s AND name = %(column)s",
            {"db": self.db, "table": table, "column": column},
        )
        if not present[0][0]:
            statement = f"ALTER TABLE {self.db}.{table} ADD COLUMN {column} {definition}"
            await self.run("add column", statement, None)

    async def create_current(self) -> None:
        for statement in _table_ddl(self.db):
            await self.run("create tables", statement, None)

    async def record(self, version: int, summary: str) -> None:
        await self.run(
            "record schema version",
            f"CREATE TABLE IF NOT EXISTS {self.db}.{MIGRATIONS_TABLE} (version UInt32, "
            f"summary String, applied_at DateTime('UTC')) {_ENGINE} ORDER BY version",
            None,
        )
        await self.run(
            "record schema version",
            f"INSERT INTO {self.db}.{MIGRATIONS_TABLE} (version, summary, applied_at) "
            "SELECT %(version)s, %(summary)s, now()",
            {"version": version, "summary": summary},
        )


async def _baseline(schema: ClickHouseSchema) -> None:
    """Version 1: the tables as they were before versions (a legacy database has them)."""
    await schema.create_current()


# The schema's history, oldest first. To change the schema: append
# Migration(N + 1, "what", function) whose statements can run twice (e.g.
# `await schema.add_column("events", "epoch", "UInt32 DEFAULT 0")`, for each
# table that has the column), and change _EVENT_COLUMNS_DDL / _table_ddl to
# match, so that a fresh database (created from them) equals a migrated one.
async def _fencing(schema: ClickHouseSchema) -> None:
    """Version 2: a lease epoch on every row and the epochs' fences (writer fencing)."""

    async def run(operation: str, statement: str) -> list[tuple[Any, ...]]:
        return await schema.run(operation, statement, None)

    await add_epoch_columns(run, schema.db)
    await schema.run("create tables", _WRITER_EPOCHS_DDL.format(db=schema.db), None)


async def _traceparent(schema: ClickHouseSchema) -> None:
    """Version 3: each event's W3C ``traceparent`` (old rows read as "")."""
    for table in ("events", "events_by_position"):
        await schema.add_column(table, "traceparent", "String DEFAULT ''")


_DIGEST_CHUNK = 500
_MUTATION_WAIT = 600.0  # seconds for the rewrite's mutations to finish


async def _claim_digests(schema: ClickHouseSchema) -> None:
    """Version 4: unique claims as keyed digests. A database written before personal
    data was encrypted holds its email claims as plaintext addresses: each becomes
    its digest, in both event tables (ALTER ... UPDATE mutations, waited for; running
    it again rewrites nothing more). Needs the key store's digest (``cqrs-admin
    migrate`` passes it). ClickHouse drops the replaced parts after
    ``old_parts_lifetime`` (8 minutes by default)."""
    rows = await schema.run(
        "read claims",
        f"SELECT toString(position), claims, releases FROM {schema.db}.events_by_position "
        "WHERE claims != '' OR releases != ''",
        None,
    )
    changed: dict[str, tuple[str, str]] = {}
    for position, taken, released in rows:
        try:
            after = digest_claim_columns(_text(taken), _text(released), schema.claim_digest)
        except PlaintextClaims:
            raise SchemaMismatch(
                f"{schema.description} holds claims in clear: run `cqrs-admin migrate` with "
                "the deployment's PII_MASTER_KEY and PII_KEYS_FILE"
            ) from None
        if after is not None:
            changed[_text(position)] = after
    keys = list(changed)
    for start in range(0, len(keys), _DIGEST_CHUNK):
        chunk = keys[start : start + _DIGEST_CHUNK]
        params = {
            "keys": chunk,
            "claims": [changed[k][0] for k in chunk],
            "releases": [changed[k][1] for k in chunk],
        }
        for table in ("events", "events_by_position"):
            await schema.run(
                "digest claims",
                f"ALTER TABLE {schema.db}.{table} UPDATE "
                "claims = transform(toString(position), %(keys)s, %(claims)s, claims), "
                "releases = transform(toString(position), %(keys)s, %(releases)s, releases) "
                "WHERE has(%(keys)s, toString(position))",
                params,
            )
    deadline = time.monotonic() + _MUTATION_WAIT
    while keys:
        pending = await schema.run(
            "wait for mutations",
            "SELECT count() FROM system.mutations WHERE database = %(db)s AND is_done = 0",
            {"db": schema.db},
        )
        if not pending[0][0]:
            break
        if time.monotonic() > deadline:
            raise StorageUnavailable(f"{schema.description}: the claim rewrite did not finish")
        await asyncio.sleep(0.2)


async def _claims_table(schema: ClickHouseSchema) -> None:
    """Version 5: ``claims``, one row per claim change, filled from the events' rows.

    Every row is copied with its event's position and epoch (including rows a
    fence hides: reads apply the same rule to both tables). Safe to run
    again: it fills the table only while it is empty.
    """
    db = schema.db
    await schema.run("create tables", _CLAIMS_DDL.format(db=db), None)
    present = await schema.run("count claims", f"SELECT count() FROM {db}.claims", None)
    if present[0][0]:
        return
    rows = await schema.run(
        "read claim changes",
        f"SELECT aggregate_id, claims, releases, position, epoch FROM {db}.events_by_position "
        "WHERE claims != '' OR releases != ''",
        None,
    )
    changes = [
        change
        for aggregate_id, taken, released, position, epoch in rows
        for change in _claim_rows(
            _text(aggregate_id),
            decode_claims(_text(taken)),
            decode_claims(_text(released)),
            position,
            epoch,
        )
    ]
    for start in range(0, len(changes), 100_000):
        await schema.run(
            "fill claims", _INSERT_CLAIMS.format(db=db), changes[start : start + 100_000]
        )


MIGRATIONS: tuple[Migration[ClickHouseSchema], ...] = (
    Migration(
        1, "baseline: events, events_by_position, event_ids, snapshots, writer_lease", _baseline
    ),
    Migration(2, "fencing: epoch on every row, writer_epochs", _fencing),
    Migration(3, "traceparent on events (W3C trace context of the request)", _traceparent),
    Migration(4, "unique claims as keyed digests (an old database's addresses)", _claim_digests),
    Migration(5, "claims: one row per claim change, read by key", _claims_table),
)


@dataclass(frozen=True, slots=True)
class _Lease:
    owner: str
    acquired: int
    heartbeat: int
    released: bool


def _claim_rows(
    aggregate_id: str,
    taken: Sequence[Claim],
    released: Sequence[Claim],
    position: int,
    epoch: int,
) -> list[tuple[str, str, str, int, int, int]]:
    """``claims`` rows of one event: releases (held 0), then claims (held 1)."""
    return [
        (claim.namespace, claim.value, aggregate_id, held, position, epoch)
        for held, claims in ((0, released), (1, taken))
        for claim in claims
    ]


def _text(value: bytes | bytearray | str) -> str:
    # With strings_as_bytes, asynch returns some String values as bytearray, not bytes.
    return value.decode() if isinstance(value, bytes | bytearray) else value


def _record(row: Sequence[Any]) -> RecordedEvent:
    """A row of `_SELECT_EVENT` read with strings_as_bytes (payload stays bytes)."""
    return RecordedEvent(
        position=row[0],
        event_id=_text(row[1]),
        aggregate_id=_text(row[2]),
        aggregate_type=_text(row[3]),
        version=row[4],
        event_type=_text(row[5]),
        timestamp=from_micros(row[6]),
        payload=bytes(row[7]),
        correlation_id=_text(row[8]),
        causation_id=_text(row[9]),
        traceparent=_text(row[10]),
    )


class ClickHouseStorage:
    """Event storage in ClickHouse.

    ``ClickHouseStorage(config)`` or ``ClickHouseStorage(host=..., port=..., ...)``
    (fields of ClickHouseConfig) only configures; the database, tables and
    connection pool are created on first use (or by `await ClickHouseStorage.open(...)`).

    Tables are created at the code's schema version in a new database; an
    existing one must be at that version (SchemaMismatch otherwise), unless
    ``migrate`` is set (``cqrs-admin migrate``): then pending migrations run.
    """

    def __init__(
        self,
        config: ClickHouseConfig | None = None,
        *,
        migrate: bool = False,
        claim_digest: ClaimDigest | None = None,
        **settings: Any,
    ) -> None:
        base = config if config is not None else ClickHouseConfig()
        self._config = replace(base, **settings) if settings else base
        self._migrate = migrate
        self._claim_digest = claim_digest
        self.schema_report: SchemaReport | None = None
        self._pool: Any = None
        self._ready_lock = asyncio.Lock()
        self._db = self._config.database
        self._where = f"{self._config.host}:{self._config.port}/{self._db}"
        self._owner = (
            self._config.owner_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        )
        self._holding = False
        self._epoch = 0  # our lease epoch (fencing token); 0 = never held
        self._fenced = False  # our epoch's fence is recorded and the state loaded: may write
        self._fences: list[Fence] = []
        self._visible = "1"  # SQL condition: rows no fence cuts off (clickhouse_fencing)
        self._fences_read_at = -1e18  # time.monotonic() of the last read of the fences
        self._lease_seq = 0
        self._lease_acquired = 0
        self._lease_valid_until = 0.0  # time.monotonic() deadline for writes
        self._lease_lost: str | None = None
        self._reload_required = False  # set when the lease was re-taken after a lapse
        self._lease_generation = 0  # bumped on every re-take
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        config: ClickHouseConfig | None = None,
        *,
        migrate: bool = False,
        claim_digest: ClaimDigest | None = None,
        **settings: Any,
    ) -> ClickHouseStorage:
        """Configure, connect and create (or check, or migrate) the database and tables
        now; ``claim_digest``: see migration 4."""
        storage = cls(config, migrate=migrate, claim_digest=claim_digest, **settings)
        try:
            await storage._ready()
        except BaseException:
            await storage.close()
            raise
        return storage

    @property
    def config(self) -> ClickHouseConfig:
        return self._config

    async def _ready(self) -> None:
        """Connect and create database and tables once (idempotent DDL)."""
        if self._pool is not None:
            return
        async with self._ready_lock:
            if self._pool is not None:
                return
            if self._closed:
                raise StorageUnavailable(f"ClickHouse storage {self._where} is closed")
            config = self._config
            sync_timeout = min(config.connect_timeout, config.query_timeout)
            pool = ClickHousePool(
                minsize=1,
                maxsize=config.pool_size,
                host=config.host,
                port=config.port,
                user=config.user,
                password=config.password,
                database=config.database,
                connect_timeout=config.connect_timeout,
                # No per-read deadline inside asynch: every use of a pooled
                # connection runs under `asyncio.timeout(query_timeout)` here
                # (`_query`, `_insert`), and asynch's own deadline costs an
                # `asyncio.wait_for` (a task) per socket read and write.
                send_receive_timeout=None,
                sync_request_timeout=sync_timeout,
            )
            try:
                async with asyncio.timeout(config.connect_timeout + config.query_timeout):
                    # The database may not exist yet: bootstrap through `default`.
                    bootstrap = asynch.connect(
                        host=config.host,
                        port=config.port,
                        user=config.user,
                        password=config.password,
                        database="default",
                        connect_timeout=config.connect_timeout,
                        send_receive_timeout=config.query_timeout,
                        sync_request_timeout=sync_timeout,
                    )
                    async with bootstrap as conn, conn.cursor() as cursor:
                        await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{self._db}`")
                    await pool.startup()
            except Exception as exc:
                raise StorageUnavailable(
                    f"ClickHouse at {config.host}:{config.port}: cannot connect or create "
                    f"database {self._db!r}: {exc!r}"
                ) from exc
            try:
                await self._create_tables(pool)
            except BaseException:
                await pool.shutdown()
                raise
            self._pool = pool

    async def _create_tables(self, pool: Any) -> None:
        async def run(operation: str, statement: str, params: QueryParams) -> list[tuple[Any, ...]]:
            return await self._query(operation, statement, params, pool=pool)

        schema = ClickHouseSchema(self._config, run, self._claim_digest)
        step = schema_versions.migrate if self._migrate else schema_versions.prepare
        self.schema_report = await step(schema, MIGRATIONS)

    # --- low-level calls ----------------------------------------------------------

    def _failure(self, operation: str, exc: BaseException) -> StorageUnavailable:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc!r}"
        return StorageUnavailable(f"ClickHouse {operation} at {self._where} {reason}")

    async def _query(
        self,
        operation: str,
        query: str,
        params: QueryParams,
        *,
        as_bytes: bool = False,
        pool: Any = None,
        time_limit: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run a query on a pooled connection (params: a dict, substituted as %(name)s;
        a list is the data of an INSERT)."""
        try:
            async with (
                asyncio.timeout(time_limit or self._config.query_timeout),
                (pool or self._pool).connection() as conn,
                conn.cursor() as cursor,
            ):
                if as_bytes:
                    # Client-side setting: String columns come back as bytes,
                    # so an opaque payload never goes through a UTF-8 decode.
                    cursor.set_settings({"strings_as_bytes": True})
                await cursor.execute(query, params)
                rows: list[tuple[Any, ...]] = await cursor.fetchall()
                return rows
        except Exception as exc:
            raise self._failure(operation, exc) from exc

    async def _fetch(
        self,
        operation: str,
        query: str,
        params: dict[str, Any] | None = None,
        *,
        as_bytes: bool = False,
        time_limit: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run a SELECT (or a statement without data) once the storage is ready."""
        await self._ready()
        return await self._query(operation, query, params, as_bytes=as_bytes, time_limit=time_limit)

    async def _execute(
        self,
        operation: str,
        query: str,
        params: dict[str, Any] | None = None,
        *,
        time_limit: float | None = None,
    ) -> None:
        """Run a statement without rows to send (DDL, INSERT ... SELECT)."""
        await self._fetch(operation, query, params, time_limit=time_limit)

    async def _insert(
        self, operation: str, query: str, rows: list[tuple[Any, ...]], query_id: str
    ) -> None:
        """INSERT ... VALUES with `rows` sent as one native block (one part: atomic)."""
        await self._ready()
        try:
            async with (
                asyncio.timeout(self._config.query_timeout),
                self._pool.connection() as conn,
                conn.cursor() as cursor,
            ):
                cursor.set_query_id(query_id)
                await cursor.execute(query, rows)
                # asynch 0.4.0 reads ONE packet after an INSERT's data; servers
                # that send Progress/ProfileEvents before EndOfStream (newer
                # than 18.16) would leave the query half-read - and a late
                # exception unseen. Drain to the end of the stream.
                proto = conn._connection
                while proto.is_query_executing:
                    packet = await proto._receive_packet()
                    if packet.exception is not None:
                        raise packet.exception
        except Exception as exc:
            raise self._failure(operation, exc) from exc

    # --- writer lease ------------------------------------------------------------

    async def _read_leases(self) -> tuple[int, dict[str, _Lease]]:
        """(server time in seconds, every owner's latest lease row: the highest seq)."""
        rows = await self._fetch(
            "read writer lease",
            f"SELECT owner, argMax(acquired, seq), argMax(heartbeat, seq), argMax(released, seq) "
            f"FROM {self._db}.writer_lease GROUP BY owner",
        )
        now_rows = await self._fetch("read server time", "SELECT toUInt64(now())")
        leases = {
            owner: _Lease(owner, acquired, heartbeat, bool(released))
            for owner, acquired, heartbeat, released in rows
        }
        return int(now_rows[0][0]), leases

    def _live_other(self, now: int, leases: dict[str, _Lease]) -> _Lease | None:
        for lease in leases.values():
            if (
                lease.owner != self._owner
                and not lease.released
                and now - lease.heartbeat < self._config.lease_ttl
            ):
                return lease
        return None

    def _held_message(self, now: int, lease: _Lease) -> str:
        age = now - lease.heartbeat
        return (
            f"ClickHouse event store {self._where}: the writer lease in {self._db}.writer_lease "
            f"is held by {lease.owner!r} (renewed {age}s ago, lease {self._config.lease_ttl:g}s); "
            f"another EventStore writer is running. Stop it, or if it crashed wait "
            f"{max(self._config.lease_ttl - age, 0):g}s."
        )

    async def _write_lease(self, *, released: bool) -> None:
        self._lease_seq += 1
        await self._execute(
            "renew writer lease",
            f"INSERT INTO {self._db}.writer_lease (owner, acquired, heartbeat, released, seq, "
            f"epoch) SELECT %(owner)s, %(acquired)s, toUInt64(now()), %(released)s, %(seq)s, "
            f"%(epoch)s",
            {
                "owner": self._owner,
                "acquired": self._lease_acquired,
                "released": int(released),
                "seq": self._lease_seq,
                "epoch": self._epoch,
            },
        )

    async def _claim_epoch(self) -> None:
        """Take the next epoch and write our lease row with it (the fencing token).

        Every later check of another writer compares against this row, so it is
        written before anything else of the epoch.
        """
        rows = await self._fetch(
            "read lease epochs", f"SELECT max(epoch) FROM {self._db}.writer_lease"
        )
        self._epoch = int(rows[0][0]) + 1 if rows else 1
        self._fenced = False
        await self._write_lease(released=False)

    async def _superseding_epoch(self, floor: int | None = None) -> int | None:
        """The epoch of another writer that is >= ``floor`` (ours by default), if any.

        Counted: every other owner's current lease row unless released (a
        claim in progress, or a live lease), and every epoch another owner
        recorded a fence for (it may have written). Ignored: a claim its owner
        released without a fence, i.e. one that backed off before reading
        state, so it never wrote. A tie (two claims at the same moment) counts
        too: both step down rather than both write.
        """
        db = self._db
        rows = await self._fetch(
            "check lease epoch",
            f"SELECT max(e) FROM ("
            f"SELECT argMax(epoch, seq) AS e, argMax(released, seq) AS r "
            f"FROM {db}.writer_lease WHERE owner != %(owner)s GROUP BY owner HAVING r = 0 "
            f"UNION ALL SELECT epoch AS e, toUInt8(0) AS r FROM {db}.writer_epochs "
            f"WHERE owner != %(owner)s)",
            {"owner": self._owner},
        )
        highest = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        return highest if highest >= (self._epoch if floor is None else floor) else None

    async def _confirm_epoch(self, step: str) -> None:
        """Fence check after a write: raise, and step down, if another writer took over.

        Called after the INSERTs of `step` returned: if no other lease epoch is
        >= ours now, no successor can have loaded its state before those rows
        landed, so they are below its fence and may be acknowledged.
        """
        successor = await self._superseding_epoch()
        if successor is not None:
            self._step_down(f"superseded by lease epoch {successor} (ours {self._epoch})")
            raise StorageUnavailable(
                f"ClickHouse {self._where}: {step} was not acknowledged: another writer took "
                f"the lease (epoch {successor} >= ours {self._epoch}); this store stepped down"
            )

    async def _next_epoch(self) -> None:
        """Move our lease to a new epoch, as a takeover would: only while it is ours and live."""
        self._check_lease()
        now, leases = await self._read_leases()
        mine = leases.get(self._owner)
        if mine is None or mine.released or now - mine.heartbeat >= self._config.lease_ttl:
            self._step_down("our lease lapsed before a new epoch could start")
        elif (holder := self._live_other(now, leases)) is not None:
            self._step_down(f"the lease is also held by {holder.owner!r}")
        else:
            previous = self._epoch
            await self._claim_epoch()
            # A pause between the read above and the claim must not let us
            # overtake a writer that took over meanwhile: compare with the
            # epoch we held, not the one just claimed.
            successor = await self._superseding_epoch(previous)
            if successor is None:
                return
            self._step_down(f"superseded by lease epoch {successor} (ours {previous})")
            # Withdraw the claim (it has no fence, we never wrote on it), so
            # that it does not make the writer that overtook us step down.
            await self._write_lease(released=True)
        raise StorageUnavailable(
            f"ClickHouse {self._where}: this store lost the writer lease ({self._lease_lost})"
        )

    def _step_down(self, reason: str) -> None:
        """Stop writing for good on this epoch: only a new lease (new epoch, reload) may write."""
        if self._lease_lost is None:
            self._lease_lost = reason
            logger.error(
                "ClickHouse writer %s (epoch %d) on %s steps down: %s",
                self._owner,
                self._epoch,
                self._where,
                reason,
            )
        self._fenced = False

    async def _take_lease(self) -> tuple[int, _Lease | None]:
        """Write our lease unless another owner's is live; (server time, live other owner)."""
        now, leases = await self._read_leases()
        holder = self._live_other(now, leases)
        if holder is not None:
            return now, holder
        self._lease_acquired = now
        await self._claim_epoch()
        # Check again once our row is visible: of two writers starting at the
        # same time at least one sees the other and backs off (both may), so
        # two can never both believe they hold the lease.
        now, leases = await self._read_leases()
        holder = self._live_other(now, leases)
        if holder is not None:
            await self._write_lease(released=True)
        return now, holder

    async def acquire_writer_lock(self) -> None:
        if self._holding:
            raise WriterLockHeld(
                f"ClickHouse event store {self._where}: this storage already holds the writer "
                "lease; another EventStore is running on it"
            )
        started = time.monotonic()
        now, holder = await self._take_lease()
        if holder is not None:
            raise WriterLockHeld(self._held_message(now, holder))
        self._holding = True
        self._lease_lost = None
        self._reload_required = False
        self._lease_valid_until = started + self._config.lease_ttl - self._lease_margin
        self._heartbeat_task = asyncio.create_task(
            self._heartbeat(), name=f"clickhouse-lease-{self._db}"
        )

    @property
    def _lease_margin(self) -> float:
        # Stop writing well before others may consider the lease expired.
        return min(self._config.lease_ttl / 3, 5.0)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._config.lease_heartbeat)
            try:
                await self._beat()
            except StorageUnavailable as exc:
                logger.warning("ClickHouse writer lease renewal failed: %s", exc)

    async def _beat(self) -> None:
        """One renewal, fenced like a write: a paused renewal never revives a lost lease."""
        started = time.monotonic()
        if self._lease_lost is not None:
            await self._retake_lease(started)
            return
        now, leases = await self._read_leases()
        mine = leases.get(self._owner)
        if mine is None or mine.released or now - mine.heartbeat >= self._config.lease_ttl:
            # Lapsed (e.g. a long outage): another writer may have run
            # meanwhile, so never write on this lease again.
            self._step_down(
                f"not renewed for {now - mine.heartbeat}s"
                if mine is not None
                else "our lease row disappeared"
            )
            return
        successor = await self._superseding_epoch()
        if successor is not None:
            self._step_down(f"superseded by lease epoch {successor} (ours {self._epoch})")
            return
        await self._write_lease(released=False)
        # The renewal counts only if nobody took over while it was on its way.
        successor = await self._superseding_epoch()
        if successor is not None:
            self._step_down(f"superseded by lease epoch {successor} (ours {self._epoch})")
            return
        self._lease_valid_until = started + self._config.lease_ttl - self._lease_margin
        await self._read_fences()

    async def _retake_lease(self, started: float) -> None:
        """After a lapse or a takeover, take a new lease if nobody else holds one.

        Another writer may have appended meanwhile, so writes stay refused
        until the engine has reloaded its state (`load_state` clears
        `_reload_required` and records the new epoch's fence).
        """
        now, holder = await self._take_lease()
        if holder is not None:
            return
        self._reload_required = True
        self._lease_generation += 1
        self._lease_lost = None
        self._lease_valid_until = started + self._config.lease_ttl - self._lease_margin
        logger.warning(
            "ClickHouse writer lease re-acquired after a lapse (server time %d, epoch %d)",
            now,
            self._epoch,
        )

    def _check_lease(self) -> None:
        if self._lease_lost is not None:
            raise StorageUnavailable(
                f"ClickHouse writer lease on {self._where} lapsed ({self._lease_lost}); another "
                "writer may have run, so this store refuses to write until it holds the lease again"
            )
        if not self._holding:
            raise StorageUnavailable(f"ClickHouse {self._where}: the writer lease is not held")
        if self._reload_required or not self._fenced:
            raise StorageUnavailable(
                f"ClickHouse writer lease on {self._where} was (re-)acquired; "
                "the store's state must be reloaded before it writes again"
            )
        if time.monotonic() > self._lease_valid_until:
            raise StorageUnavailable(
                f"ClickHouse writer lease on {self._where} could not be renewed in time; "
                "refusing to write until it is"
            )

    async def release_writer_lock(self) -> None:
        if not self._holding:
            return
        self._holding = False
        self._fenced = False
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._lease_lost is None:
            try:
                await self._write_lease(released=True)
            except StorageUnavailable:
                # The lease simply expires after lease_ttl.
                logger.warning("could not release the ClickHouse writer lease", exc_info=True)

    # --- fences -----------------------------------------------------------------

    async def _read_fences(self) -> str:
        """Read every epoch's fence; returns the visibility condition (also kept for reads)."""
        rows = await self._fetch(
            "read fences",
            f"SELECT epoch, min(start_position) FROM {self._db}.writer_epochs GROUP BY epoch",
        )
        self._fences = [Fence(int(epoch), int(start)) for epoch, start in rows]
        self._visible = visible_rows(self._fences)
        self._fences_read_at = time.monotonic()
        return self._visible

    async def _visibility(self) -> str:
        """The visibility condition for a read, from fences at most one heartbeat old.

        A writer that was paused finds its copy stale on resuming and reads it
        again, so it never serves rows that a successor's fence cut off.
        """
        if time.monotonic() - self._fences_read_at > self._config.lease_heartbeat:
            return await self._read_fences()
        return self._visible

    async def _record_fence(self) -> int:
        """Record our epoch's fence at the log's current end; returns that position.

        Rows of earlier epochs above it become invisible: a paused writer's
        INSERT that lands after this point is never read.
        """
        visible = await self._read_fences()
        db = self._db
        rows = await self._fetch(
            "find the end of the log",
            f"SELECT max(position) FROM (SELECT position, epoch FROM {db}.events_by_position "
            f"UNION ALL SELECT position, epoch FROM {db}.events) WHERE {visible}",
            time_limit=self._config.load_timeout,
        )
        last = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        await self._execute(
            "record fence",
            f"INSERT INTO {db}.writer_epochs (epoch, owner, start_position, recorded) "
            f"SELECT %(epoch)s, %(owner)s, %(start)s, now()",
            {"epoch": self._epoch, "owner": self._owner, "start": last},
        )
        await self._confirm_epoch("recording the fence")
        await self._read_fences()
        return last

    # --- state ------------------------------------------------------------------

    async def _reconcile(self, span: tuple[int, int] | None = None) -> None:
        """Copy visible rows missing from one of events / events_by_position / event_ids.

        The three INSERTs of a batch are not atomic together; a crash or a
        failure may leave a batch in some of the tables only. Visible rows in
        either full table count as committed (the engine settles the batch
        from them). Copies keep their epoch, so a late copy (a paused repair)
        only repeats rows that exist already or that a fence hides. With
        ``span`` (a failed batch's first and last position) only those
        positions are compared: a primary-key range of each table's key.
        """
        db = self._db
        visible = self._visible
        if span is not None:
            visible = f"{visible} AND position BETWEEN {int(span[0])} AND {int(span[1])}"
        counts = await self._fetch(
            "compare tables",
            f"SELECT 'events', uniqExact(position), max(position) FROM {db}.events "
            f"WHERE {visible} UNION ALL "
            f"SELECT 'by_position', uniqExact(position), max(position) FROM "
            f"{db}.events_by_position WHERE {visible} UNION ALL "
            f"SELECT 'ids', uniqExact(position), max(position) FROM {db}.event_ids "
            f"WHERE {visible}",
            time_limit=self._config.load_timeout,
        )
        if len({(count, top) for _name, count, top in counts}) == 1:
            return
        logger.warning("ClickHouse %s: tables disagree %s, reconciling", self._where, counts)
        for target, source in (("events_by_position", "events"), ("events", "events_by_position")):
            await self._execute(
                f"reconcile {target}",
                f"INSERT INTO {db}.{target} ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
                f"FROM {db}.{source} WHERE {visible} AND position NOT IN "
                f"(SELECT position FROM {db}.{target} WHERE {visible}) "
                f"ORDER BY position, epoch DESC LIMIT 1 BY position",
                time_limit=self._config.load_timeout,
            )
        await self._execute(
            "reconcile event_ids",
            f"INSERT INTO {db}.event_ids (event_id, aggregate_id, version, position, epoch) "
            f"SELECT event_id, aggregate_id, version, position, epoch FROM {db}.events_by_position "
            f"WHERE {visible} AND (position, event_id) NOT IN "
            f"(SELECT position, event_id FROM {db}.event_ids WHERE {visible}) "
            f"ORDER BY position, epoch DESC LIMIT 1 BY position",
            time_limit=self._config.load_timeout,
        )
        await self._confirm_epoch("the repair of a half-written batch")

    async def _reconcile_claims(self, after: int | None = None) -> None:
        """Write the ``claims`` rows of visible events that lack them.

        A batch's claims INSERT may fail while its events land; the writer
        then settles that batch, or, if it died first, the batch is the last
        one with claim changes: so only events above the last claim row
        (``after`` if given: the start of a failed batch) are looked at, a
        range of ``events_by_position``'s key. Rows get their event's
        position and epoch, hence the same visibility.
        """
        db = self._db
        visible = self._visible
        if after is None:
            rows = await self._fetch(
                "find the last claim",
                f"SELECT max(position) FROM {db}.claims WHERE {visible}",
                time_limit=self._config.load_timeout,
            )
            after = int(rows[0][0]) if rows and rows[0][0] is not None else 0
        events = await self._fetch(
            "find claim changes",
            f"SELECT aggregate_id, claims, releases, position, epoch FROM {db}.events_by_position "
            f"WHERE position > %(after)s AND (claims != '' OR releases != '') AND {visible} "
            f"ORDER BY position, epoch DESC LIMIT 1 BY position",
            {"after": after},
            time_limit=self._config.load_timeout,
        )
        if not events:
            return
        present = await self._fetch(
            "find claim rows",
            f"SELECT DISTINCT position FROM {db}.claims WHERE position > %(after)s AND {visible}",
            {"after": after},
            time_limit=self._config.load_timeout,
        )
        have = {int(row[0]) for row in present}
        missing = [
            change
            for aggregate_id, taken, released, position, epoch in events
            if position not in have
            for change in _claim_rows(
                aggregate_id, decode_claims(taken), decode_claims(released), position, epoch
            )
        ]
        if missing:
            logger.warning(
                "ClickHouse %s: %d claim rows missing, repairing", self._where, len(missing)
            )
            await self._insert(
                "repair claims", _INSERT_CLAIMS.format(db=db), list(missing), uuid.uuid4().hex
            )
            await self._confirm_epoch("the repair of claims")

    async def _begin_epoch(self, *, full: bool) -> tuple[int, int]:
        """Start a new epoch and record its fence first; repair; (lease generation, log end).

        A failed write's INSERTs may still land: taking a new epoch and
        recording its fence before reading makes them invisible if they land
        later, so nothing has to be waited for. The whole log is repaired if
        ``full`` or if another writer may have run since our last fence (at
        open, after a re-take); else the caller repairs just its batch.
        """
        if not self._holding or self._lease_lost is not None:
            raise StorageUnavailable(
                f"ClickHouse {self._where}: this store does not hold the writer lease "
                f"({self._lease_lost or 'not taken'}); it does not load state"
            )
        generation = self._lease_generation
        full = full or not self._fenced
        if self._fenced:  # a reload: the epoch that failed to write ends here
            await self._next_epoch()
        last_position = await self._record_fence()
        if full:
            await self._reconcile()
            await self._reconcile_claims()
        return generation, last_position

    def _end_epoch(self, generation: int) -> None:
        """The state is settled: writes may resume (unless the lease was re-taken meanwhile)."""
        # Reads that began after the last re-take reflect every writer before it.
        if generation == self._lease_generation:
            self._reload_required = False
            self._fenced = True

    async def load_state(self) -> StorageState:
        """Start a new epoch (fence first), repair the whole log, return its end.

        Heads and claims are not read (`lookup` reads them by key), so apart
        from the repair's comparison of the tables this costs the same for any
        number of streams.
        """
        generation, last_position = await self._begin_epoch(full=True)
        await self._confirm_epoch("loading the state")
        self._end_epoch(generation)
        return StorageState(last_position=last_position)

    async def settle_batch(self, events: Sequence[PendingEvent]) -> Settled:
        """New epoch and fence (so the failed INSERTs can no longer land visibly), then
        repair just that batch's positions; landed iff its events are visible."""
        full = not self._fenced or self._reload_required
        generation, last_position = await self._begin_epoch(full=False)
        landed = False
        if events:
            first, last = events[0].record.position, events[-1].record.position
            if not full:
                await self._reconcile((first, last))
            rows = await self._fetch(
                "settle batch",
                f"SELECT uniqExact(position) FROM {self._db}.events_by_position "
                f"WHERE position BETWEEN %(first)s AND %(last)s AND event_id IN %(ids)s "
                f"AND {self._visible}",
                {
                    "first": first,
                    "last": last,
                    "ids": tuple(pending.record.event_id for pending in events),
                },
            )
            found = int(rows[0][0])
            landed = found > 0
            if landed and found != len(events):
                raise StorageUnavailable(
                    f"ClickHouse {self._where}: {found} of the {len(events)} events of a failed "
                    "batch are stored; the batch cannot be settled"
                )
            if landed and not full:
                await self._reconcile_claims(first - 1)
        await self._confirm_epoch("settling a failed batch")
        self._end_epoch(generation)
        return Settled(landed=landed, last_position=last_position)

    async def lookup(self, aggregate_ids: Sequence[str], claims: Sequence[Claim]) -> Lookup:
        """Heads from ``events`` and owners from ``claims``, by key, concurrently."""
        visible = await self._visibility()
        db = self._db
        ids = list(dict.fromkeys(aggregate_ids))
        keys = list(dict.fromkeys((claim.namespace, claim.value) for claim in claims))
        queries = [
            self._fetch(
                "look up heads",
                f"SELECT aggregate_id, max(version) FROM {db}.events "
                f"WHERE aggregate_id IN %(ids)s AND {visible} GROUP BY aggregate_id",
                {"ids": tuple(ids[start : start + _IN_CHUNK])},
            )
            for start in range(0, len(ids), _IN_CHUNK)
        ]
        heads_queries = len(queries)
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            # One pair would render as `IN ('ns', 'value')`, a set of two strings.
            pairs = tuple(chunk) if len(chunk) > 1 else (chunk[0], chunk[0])
            queries.append(
                self._fetch(
                    "look up claims",
                    f"SELECT namespace, value, aggregate_id, held FROM {db}.claims "
                    f"WHERE (namespace, value) IN %(pairs)s AND {visible} "
                    f"ORDER BY position, held, epoch DESC "
                    f"LIMIT 1 BY position, held, namespace, value",
                    {"pairs": pairs},
                )
            )
        results = await asyncio.gather(*queries)
        heads = {
            aggregate_id: int(version)
            for rows in results[:heads_queries]
            for aggregate_id, version in rows
        }
        owners: dict[Claim, str] = {}
        for rows in results[heads_queries:]:
            # In position order, releases (held 0) before claims: the writer's rules.
            for namespace, value, aggregate_id, held in rows:
                claim = Claim(namespace, value)
                if held:
                    apply_claim_changes(owners, aggregate_id, (claim,), ())
                else:
                    apply_claim_changes(owners, aggregate_id, (), (claim,))
        return Lookup(heads, owners)

    async def _heads(self, visible: str) -> dict[str, int]:
        rows = await self._fetch(
            "load heads",
            f"SELECT aggregate_id, max(version) FROM {self._db}.events WHERE {visible} "
            f"GROUP BY aggregate_id",
            time_limit=self._config.load_timeout,
        )
        return {aggregate_id: int(version) for aggregate_id, version in rows}

    async def stream_heads(self) -> dict[str, int]:
        """Every stream's version, from the by-stream table (``events``), as a reader sees
        it (no lease needed: ``cqrs-admin copy-store`` compares a copy's with its source's)."""
        return await self._heads(await self._visibility())

    # --- writes -----------------------------------------------------------------

    @property
    def unique_event_ids(self) -> bool:
        return False  # MergeTree has no unique keys: find_event_ids is the check

    async def write_batch(self, events: Sequence[PendingEvent]) -> None:
        self._check_lease()
        if not events:
            return
        rows: list[tuple[Any, ...]] = []
        id_rows: list[tuple[Any, ...]] = []
        claim_rows: list[tuple[Any, ...]] = []
        for pending in events:
            record = pending.record
            micros = to_micros(record.timestamp)
            rows.append(
                (
                    record.position,
                    record.event_id,
                    record.aggregate_id,
                    record.aggregate_type,
                    record.version,
                    record.event_type,
                    micros // 1_000_000,  # DateTime accepts epoch seconds: no time zone guess
                    micros,
                    record.payload,
                    record.correlation_id,
                    record.causation_id,
                    encode_claims(pending.claims),
                    encode_claims(pending.releases),
                    self._epoch,
                    record.traceparent,
                )
            )
            id_rows.append(
                (record.event_id, record.aggregate_id, record.version, record.position, self._epoch)
            )
            claim_rows.extend(
                _claim_rows(
                    record.aggregate_id,
                    pending.claims,
                    pending.releases,
                    record.position,
                    self._epoch,
                )
            )
        batch = uuid.uuid4().hex
        db = self._db
        inserts = {
            f"{batch}-events": (f"INSERT INTO {db}.events ({_EVENT_COLUMNS}) VALUES", rows),
            f"{batch}-by-position": (
                f"INSERT INTO {db}.events_by_position ({_EVENT_COLUMNS}) VALUES",
                rows,
            ),
            f"{batch}-ids": (
                f"INSERT INTO {db}.event_ids (event_id, aggregate_id, version, position, epoch) "
                "VALUES",
                id_rows,
            ),
        }
        if claim_rows:
            inserts[f"{batch}-claims"] = (_INSERT_CLAIMS.format(db=db), claim_rows)
        # Concurrently: a batch costs one round trip, not three.
        outcomes = await asyncio.gather(
            *(
                self._insert("insert batch", query, data, query_id)
                for query_id, (query, data) in inserts.items()
            ),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            first = failures[0]
            if isinstance(first, StorageUnavailable):
                raise first
            raise self._failure("insert batch", first) from first
        await self._confirm_epoch("the batch")

    async def read_log(self, *, after_position: int, limit: int) -> list[PendingEvent]:
        """Events after ``after_position`` in position order, with their claim changes:
        every column the store wrote (backups; see cqrs_admin.backup)."""
        # Fenced like every read: rows a superseded writer left are not copied.
        visible = await self._visibility()
        rows = await self._fetch(
            "read log",
            f"SELECT {_SELECT_EVENT}, claims, releases FROM {self._db}.events_by_position "
            f"WHERE position > %(after)s AND {visible} "
            "ORDER BY position, epoch DESC LIMIT 1 BY position LIMIT %(limit)s",
            {"after": after_position, "limit": limit},
            as_bytes=True,
            time_limit=self._config.load_timeout,
        )
        claims_at = len(_SELECT_EVENT.split(","))  # claims, releases follow the event's columns
        return [
            PendingEvent(
                _record(row),
                decode_claims(_text(row[claims_at])),
                decode_claims(_text(row[claims_at + 1])),
            )
            for row in rows
        ]

    async def find_event_ids(self, event_ids: Sequence[str]) -> dict[str, EventLocation]:
        found: dict[str, EventLocation] = {}
        unique = list(dict.fromkeys(event_ids))
        # Ids travel in the query text: chunk to stay far below max_query_size (256 KiB).
        for start in range(0, len(unique), _IN_CHUNK):
            found.update(await self._find_event_ids(tuple(unique[start : start + _IN_CHUNK])))
        return found

    async def _find_event_ids(self, ids: tuple[str, ...]) -> dict[str, EventLocation]:
        candidates = await self._fetch(
            "find event ids",
            f"SELECT event_id, aggregate_id FROM {self._db}.event_ids WHERE event_id IN %(ids)s",
            {"ids": ids},
            as_bytes=True,
        )
        if not candidates:
            return {}
        # An id row counts only if an event row agrees: a failed batch may have
        # left id rows whose positions were later reused by other events.
        visible = await self._visibility()
        confirmed = await self._fetch(
            "confirm event ids",
            f"SELECT event_id, aggregate_id, version, position FROM {self._db}.events "
            f"WHERE aggregate_id IN %(aggregates)s AND event_id IN %(ids)s AND {visible} "
            f"ORDER BY position, epoch DESC LIMIT 1 BY position",
            {
                "aggregates": tuple({_text(row[1]) for row in candidates}),
                "ids": tuple({_text(row[0]) for row in candidates}),
            },
            as_bytes=True,
        )
        found: dict[str, EventLocation] = {}
        for raw_id, raw_aggregate, version, position in confirmed:
            event_id = _text(raw_id)
            found[event_id] = EventLocation(event_id, _text(raw_aggregate), version, position)
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
        conditions = [
            "aggregate_id = %(aggregate_id)s",
            "version >= %(from_version)s",
            await self._visibility(),
        ]
        params: dict[str, Any] = {"aggregate_id": aggregate_id, "from_version": from_version}
        if to_version is not None:
            conditions.append("version <= %(to_version)s")
            params["to_version"] = to_version
        if until is not None:
            conditions.append("timestamp_us <= %(until)s")
            params["until"] = to_micros(until)
        query = (
            f"SELECT {_SELECT_EVENT} FROM {self._db}.events WHERE {' AND '.join(conditions)} "
            f"ORDER BY version, epoch DESC LIMIT 1 BY version"
        )
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        rows = await self._fetch("read stream", query, params, as_bytes=True)
        return [_record(row) for row in rows]

    @staticmethod
    def _filters(
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[list[str], dict[str, Any]]:
        conditions: list[str] = []
        params: dict[str, Any] = {}
        if event_types:
            conditions.append("event_type IN %(event_types)s")
            params["event_types"] = tuple(event_types)
        if aggregate_id is not None:
            conditions.append("aggregate_id = %(aggregate_id)s")
            params["aggregate_id"] = aggregate_id
        if since is not None:
            conditions.append("timestamp_us >= %(since)s")
            params["since"] = to_micros(since)
        if until is not None:
            conditions.append("timestamp_us <= %(until)s")
            params["until"] = to_micros(until)
        return conditions, params

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
        conditions, params = self._filters(event_types, aggregate_id, since, until)
        params["after"] = after_position
        if not conditions:
            # Positions are gapless, so the next `limit` events are exactly the
            # positions after..after+limit: a bounded primary-key range, even
            # on 18.16, which cannot stop an ORDER BY ... LIMIT scan early.
            conditions.append("position <= %(upto)s")
            params["upto"] = after_position + limit
        conditions.insert(0, "position > %(after)s")
        conditions.append(await self._visibility())
        # By stream: the (aggregate_id, version) key finds the rows.
        table = "events" if aggregate_id is not None else "events_by_position"
        query = (
            f"SELECT {_SELECT_EVENT} FROM {self._db}.{table} WHERE {' AND '.join(conditions)} "
            f"ORDER BY position, epoch DESC LIMIT 1 BY position LIMIT {int(limit)}"
        )
        rows = await self._fetch("read all", query, params, as_bytes=True)
        return [_record(row) for row in rows]

    async def count(
        self,
        *,
        event_types: Sequence[str],
        aggregate_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> int:
        conditions, params = self._filters(event_types, aggregate_id, since, until)
        conditions.append(await self._visibility())
        table = "events" if aggregate_id is not None else "events_by_position"
        where = f" WHERE {' AND '.join(conditions)}"
        rows = await self._fetch(
            "count", f"SELECT uniqExact(position) FROM {self._db}.{table}{where}", params or None
        )
        return int(rows[0][0])

    async def aggregate_ids(self, *, after: str, limit: int) -> list[str]:
        rows = await self._fetch(
            "list aggregate ids",
            f"SELECT DISTINCT aggregate_id FROM {self._db}.events WHERE aggregate_id > %(after)s "
            f"AND {await self._visibility()} ORDER BY aggregate_id LIMIT {int(limit)}",
            {"after": after},
        )
        return [row[0] for row in rows]

    # --- snapshots --------------------------------------------------------------

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Fenced like a batch: stored with our epoch, confirmed only if nobody took over."""
        self._check_lease()
        micros = to_micros(snapshot.created_at)
        await self._insert(
            "save snapshot",
            f"INSERT INTO {self._db}.snapshots (aggregate_id, version, schema_version, state, "
            f"created_at, created_at_us, epoch) VALUES",
            [
                (
                    snapshot.aggregate_id,
                    snapshot.version,
                    snapshot.schema_version,
                    snapshot.state,
                    micros // 1_000_000,
                    micros,
                    self._epoch,
                )
            ],
            uuid.uuid4().hex,
        )
        await self._confirm_epoch("the snapshot")

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(
            "read snapshot",
            f"SELECT version, schema_version, state, created_at_us FROM {self._db}.snapshots "
            f"WHERE aggregate_id = %(aggregate_id)s "
            f"ORDER BY version DESC, epoch DESC, created_at_us DESC LIMIT 1",
            {"aggregate_id": aggregate_id},
            as_bytes=True,
        )
        if not rows:
            return None
        version, schema_version, state, created_at_us = rows[0]
        return SnapshotRecord(
            aggregate_id, version, schema_version, bytes(state), from_micros(created_at_us)
        )

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.release_writer_lock()
        finally:
            self._closed = True
            async with self._ready_lock:
                pool, self._pool = self._pool, None
                if pool is not None:
                    await pool.shutdown()
