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

18.16 has no DateTime64, so `timestamp` is DateTime('UTC') (seconds, for
humans) and `timestamp_us` (UInt64 microseconds) is what ordering and filters
use. ClickHouse has no transactions: a batch is three INSERTs (run
concurrently), which may land partly. The engine reloads state after any
failed write, and `load_state` first waits until the failed INSERTs are no
longer running on the server, then copies rows missing from one table into
the others (`_reconcile`), so the three tables always agree before the next
batch is written. Reads deduplicate (`LIMIT 1 BY position`), so a row that
was ever written twice is never returned twice.

Writer lock: a lease row per owner, renewed every `lease_heartbeat` seconds
with the SERVER's clock. A writer refuses to open while another owner's
lease is fresh (< `lease_ttl`) and refuses to write once it has not renewed
for `lease_ttl - margin`. If its own lease lapsed (a long outage), another
writer may have run: it writes nothing until it has taken a new lease (only
if nobody else holds one) AND the engine has reloaded its state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import asynch

from store_svc.engine.errors import StorageUnavailable, WriterLockHeld
from store_svc.engine.model import (
    Claim,
    EventLocation,
    PendingEvent,
    RecordedEvent,
    SnapshotRecord,
    StorageState,
    apply_claim_changes,
    decode_claims,
    encode_claims,
    from_micros,
    to_micros,
)

__all__ = ["ClickHouseConfig", "ClickHouseStorage"]

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
    traceparent String DEFAULT ''
"""
_EVENT_COLUMNS = (
    "position, event_id, aggregate_id, aggregate_type, version, event_type, timestamp, "
    "timestamp_us, payload, correlation_id, causation_id, claims, releases, traceparent"
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


@dataclass(frozen=True, slots=True)
class _Lease:
    owner: str
    acquired: int
    heartbeat: int
    released: bool


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
    """

    def __init__(self, config: ClickHouseConfig | None = None, **settings: Any) -> None:
        base = config if config is not None else ClickHouseConfig()
        self._config = replace(base, **settings) if settings else base
        self._pool: Any = None
        self._ready_lock = asyncio.Lock()
        self._db = self._config.database
        self._where = f"{self._config.host}:{self._config.port}/{self._db}"
        self._owner = (
            self._config.owner_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        )
        # Query ids of INSERTs that failed on our side and may still run on the server.
        self._unsettled_inserts: set[str] = set()
        self._holding = False
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
        cls, config: ClickHouseConfig | None = None, **settings: Any
    ) -> ClickHouseStorage:
        """Configure, connect and create the database and tables now."""
        storage = cls(config, **settings)
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
            pool = asynch.Pool(
                minsize=1,
                maxsize=config.pool_size,
                host=config.host,
                port=config.port,
                user=config.user,
                password=config.password,
                database=config.database,
                connect_timeout=config.connect_timeout,
                send_receive_timeout=config.query_timeout,
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
        db = self._db
        engine = "ENGINE = MergeTree() PARTITION BY tuple()"
        for statement in (
            f"CREATE TABLE IF NOT EXISTS {db}.events ({_EVENT_COLUMNS_DDL}) "
            f"{engine} ORDER BY (aggregate_id, version)",
            f"CREATE TABLE IF NOT EXISTS {db}.events_by_position ({_EVENT_COLUMNS_DDL}) "
            f"{engine} ORDER BY position",
            f"CREATE TABLE IF NOT EXISTS {db}.event_ids (event_id String, aggregate_id String, "
            f"version UInt64, position UInt64) {engine} ORDER BY event_id",
            f"CREATE TABLE IF NOT EXISTS {db}.snapshots (aggregate_id String, version UInt64, "
            f"schema_version UInt32, state String, created_at DateTime('UTC'), "
            f"created_at_us UInt64) {engine} ORDER BY (aggregate_id, version)",
            f"CREATE TABLE IF NOT EXISTS {db}.writer_lease (owner String, acquired UInt64, "
            f"heartbeat UInt64, released UInt8, seq UInt64) "
            f"ENGINE = ReplacingMergeTree(seq) ORDER BY owner",
        ):
            await self._query("create tables", statement, None, pool=pool)
        # Tables made by an older release lack the columns added since (checked
        # here: ADD COLUMN IF NOT EXISTS is not in every supported server).
        present = await self._query(
            "read columns",
            "SELECT table, name FROM system.columns WHERE database = %(db)s",
            {"db": db},
            pool=pool,
        )
        for table in ("events", "events_by_position"):
            if (table, "traceparent") not in {(str(t), str(n)) for t, n in present}:
                await self._query(
                    "add columns",
                    f"ALTER TABLE {db}.{table} ADD COLUMN traceparent String DEFAULT ''",
                    None,
                    pool=pool,
                )

    # --- low-level calls ----------------------------------------------------------

    def _failure(self, operation: str, exc: BaseException) -> StorageUnavailable:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc!r}"
        return StorageUnavailable(f"ClickHouse {operation} at {self._where} {reason}")

    async def _query(
        self,
        operation: str,
        query: str,
        params: dict[str, Any] | None,
        *,
        as_bytes: bool = False,
        pool: Any = None,
        time_limit: float | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run a query on a pooled connection (params: a dict, substituted as %(name)s)."""
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
            f"INSERT INTO {self._db}.writer_lease (owner, acquired, heartbeat, released, seq) "
            f"SELECT %(owner)s, %(acquired)s, toUInt64(now()), %(released)s, %(seq)s",
            {
                "owner": self._owner,
                "acquired": self._lease_acquired,
                "released": int(released),
                "seq": self._lease_seq,
            },
        )

    async def _take_lease(self) -> tuple[int, _Lease | None]:
        """Write our lease unless another owner's is live; (server time, live other owner)."""
        now, leases = await self._read_leases()
        holder = self._live_other(now, leases)
        if holder is not None:
            return now, holder
        self._lease_acquired = now
        await self._write_lease(released=False)
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
            started = time.monotonic()
            try:
                if self._lease_lost is not None:
                    await self._retake_lease(started)
                    continue
                now, leases = await self._read_leases()
                mine = leases.get(self._owner)
                if mine is None or mine.released or now - mine.heartbeat >= self._config.lease_ttl:
                    # Lapsed (e.g. a long outage): another writer may have run
                    # meanwhile, so never write on this lease again.
                    self._lease_lost = (
                        f"not renewed for {now - mine.heartbeat}s"
                        if mine is not None
                        else "our lease row disappeared"
                    )
                    logger.error("ClickHouse writer lease lost: %s", self._lease_lost)
                    continue
                await self._write_lease(released=False)
                self._lease_valid_until = started + self._config.lease_ttl - self._lease_margin
            except StorageUnavailable as exc:
                logger.warning("ClickHouse writer lease renewal failed: %s", exc)

    async def _retake_lease(self, started: float) -> None:
        """After a lapse, take a new lease if nobody else holds one.

        Another writer may have appended meanwhile, so writes stay refused
        until the engine has reloaded its state (`load_state` clears
        `_reload_required`).
        """
        now, holder = await self._take_lease()
        if holder is not None:
            return
        self._reload_required = True
        self._lease_generation += 1
        self._lease_lost = None
        self._lease_valid_until = started + self._config.lease_ttl - self._lease_margin
        logger.warning("ClickHouse writer lease re-acquired after a lapse (server time %d)", now)

    def _check_lease(self) -> None:
        if self._lease_lost is not None:
            raise StorageUnavailable(
                f"ClickHouse writer lease on {self._where} lapsed ({self._lease_lost}); another "
                "writer may have run, so this store refuses to write until it holds the lease again"
            )
        if not self._holding:
            raise StorageUnavailable(f"ClickHouse {self._where}: the writer lease is not held")
        if self._reload_required:
            raise StorageUnavailable(
                f"ClickHouse writer lease on {self._where} was re-acquired after a lapse; "
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

    # --- state ------------------------------------------------------------------

    async def _settle_unsettled_inserts(self) -> None:
        """Wait until no INSERT that failed on our side still runs on the server.

        Known limit: an INSERT the server had not even started when we gave up
        (our query_timeout elapsed with the data still in its socket buffer)
        is invisible here and could land later.
        """
        if not self._unsettled_inserts:
            return
        deadline = time.monotonic() + self._config.query_timeout
        while True:
            rows = await self._fetch(
                "check for unfinished inserts",
                "SELECT query_id FROM system.processes WHERE query_id IN %(ids)s",
                {"ids": tuple(self._unsettled_inserts)},
            )
            if not rows:
                self._unsettled_inserts.clear()
                return
            if time.monotonic() > deadline:
                raise StorageUnavailable(
                    f"ClickHouse {self._where}: a failed batch insert is still running on the "
                    "server; state cannot be reloaded yet"
                )
            await asyncio.sleep(0.05)

    async def _reconcile(self) -> None:
        """Copy rows missing from one of events / events_by_position / event_ids.

        The three INSERTs of a batch are not atomic together; a crash or a
        failure may leave a batch in some of the tables only. Rows in either
        full table count as committed (the engine reloads its state from them).
        """
        db = self._db
        counts = await self._fetch(
            "compare tables",
            f"SELECT 'events', count(), max(position) FROM {db}.events UNION ALL "
            f"SELECT 'by_position', count(), max(position) FROM {db}.events_by_position "
            f"UNION ALL SELECT 'ids', count(), max(position) FROM {db}.event_ids",
            time_limit=self._config.load_timeout,
        )
        if len({(count, top) for _name, count, top in counts}) == 1:
            return
        logger.warning("ClickHouse %s: tables disagree %s, reconciling", self._where, counts)
        for target, source in (("events_by_position", "events"), ("events", "events_by_position")):
            await self._execute(
                f"reconcile {target}",
                f"INSERT INTO {db}.{target} ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
                f"FROM {db}.{source} WHERE position NOT IN (SELECT position FROM {db}.{target}) "
                f"LIMIT 1 BY position",
                time_limit=self._config.load_timeout,
            )
        await self._execute(
            "reconcile event_ids",
            f"INSERT INTO {db}.event_ids (event_id, aggregate_id, version, position) "
            f"SELECT event_id, aggregate_id, version, position FROM {db}.events_by_position "
            f"WHERE (position, event_id) NOT IN (SELECT position, event_id FROM {db}.event_ids) "
            f"LIMIT 1 BY position",
            time_limit=self._config.load_timeout,
        )

    async def load_state(self) -> StorageState:
        generation = self._lease_generation
        await self._settle_unsettled_inserts()
        await self._reconcile()
        db = self._db
        heads_rows = await self._fetch(
            "load heads",
            f"SELECT aggregate_id, max(version) FROM {db}.events GROUP BY aggregate_id",
            time_limit=self._config.load_timeout,
        )
        last_rows = await self._fetch(
            "load last position",
            f"SELECT max(position) FROM {db}.events_by_position",
            time_limit=self._config.load_timeout,
        )
        claim_rows = await self._fetch(
            "load claims",
            f"SELECT aggregate_id, claims, releases FROM {db}.events_by_position "
            f"WHERE claims != '' OR releases != '' ORDER BY position LIMIT 1 BY position",
            time_limit=self._config.load_timeout,
        )
        claims: dict[Claim, str] = {}
        for aggregate_id, taken, released in claim_rows:
            apply_claim_changes(claims, aggregate_id, decode_claims(taken), decode_claims(released))
        # Reads that began after the last re-take reflect every writer before it.
        if generation == self._lease_generation:
            self._reload_required = False
        # max() is insensitive to duplicate rows, so nothing is double counted.
        return StorageState(
            heads={aggregate_id: int(version) for aggregate_id, version in heads_rows},
            claims=claims,
            last_position=int(last_rows[0][0]) if last_rows else 0,
        )

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
                    record.traceparent,
                )
            )
            id_rows.append((record.event_id, record.aggregate_id, record.version, record.position))
        batch = uuid.uuid4().hex
        db = self._db
        inserts = {
            f"{batch}-events": (f"INSERT INTO {db}.events ({_EVENT_COLUMNS}) VALUES", rows),
            f"{batch}-by-position": (
                f"INSERT INTO {db}.events_by_position ({_EVENT_COLUMNS}) VALUES",
                rows,
            ),
            f"{batch}-ids": (
                f"INSERT INTO {db}.event_ids (event_id, aggregate_id, version, position) VALUES",
                id_rows,
            ),
        }
        self._unsettled_inserts.update(inserts)
        # Concurrently: a batch costs one round trip, not three.
        outcomes = await asyncio.gather(
            *(
                self._insert("insert batch", query, data, query_id)
                for query_id, (query, data) in inserts.items()
            ),
            return_exceptions=True,
        )
        failures = []
        for query_id, outcome in zip(inserts, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failures.append(outcome)
            else:
                self._unsettled_inserts.discard(query_id)
        if failures:
            first = failures[0]
            if isinstance(first, StorageUnavailable):
                raise first
            raise self._failure("insert batch", first) from first

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
        confirmed = await self._fetch(
            "confirm event ids",
            f"SELECT event_id, aggregate_id, version, position FROM {self._db}.events "
            f"WHERE aggregate_id IN %(aggregates)s AND event_id IN %(ids)s",
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
        conditions = ["aggregate_id = %(aggregate_id)s", "version >= %(from_version)s"]
        params: dict[str, Any] = {"aggregate_id": aggregate_id, "from_version": from_version}
        if to_version is not None:
            conditions.append("version <= %(to_version)s")
            params["to_version"] = to_version
        if until is not None:
            conditions.append("timestamp_us <= %(until)s")
            params["until"] = to_micros(until)
        query = (
            f"SELECT {_SELECT_EVENT} FROM {self._db}.events WHERE {' AND '.join(conditions)} "
            f"ORDER BY version LIMIT 1 BY version"
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
        # By stream: the (aggregate_id, version) key finds the rows.
        table = "events" if aggregate_id is not None else "events_by_position"
        query = (
            f"SELECT {_SELECT_EVENT} FROM {self._db}.{table} WHERE {' AND '.join(conditions)} "
            f"ORDER BY position LIMIT 1 BY position LIMIT {int(limit)}"
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
        table = "events" if aggregate_id is not None else "events_by_position"
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._fetch(
            "count", f"SELECT uniqExact(position) FROM {self._db}.{table}{where}", params or None
        )
        return int(rows[0][0])

    async def aggregate_ids(self, *, after: str, limit: int) -> list[str]:
        rows = await self._fetch(
            "list aggregate ids",
            f"SELECT DISTINCT aggregate_id FROM {self._db}.events WHERE aggregate_id > %(after)s "
            f"ORDER BY aggregate_id LIMIT {int(limit)}",
            {"after": after},
        )
        return [row[0] for row in rows]

    # --- snapshots --------------------------------------------------------------

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        micros = to_micros(snapshot.created_at)
        await self._insert(
            "save snapshot",
            f"INSERT INTO {self._db}.snapshots (aggregate_id, version, schema_version, state, "
            f"created_at, created_at_us) VALUES",
            [
                (
                    snapshot.aggregate_id,
                    snapshot.version,
                    snapshot.schema_version,
                    snapshot.state,
                    micros // 1_000_000,
                    micros,
                )
            ],
            uuid.uuid4().hex,
        )

    async def latest_snapshot(self, aggregate_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(
            "read snapshot",
            f"SELECT version, schema_version, state, created_at_us FROM {self._db}.snapshots "
            f"WHERE aggregate_id = %(aggregate_id)s "
            f"ORDER BY version DESC, created_at_us DESC LIMIT 1",
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
