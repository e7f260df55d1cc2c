"""The read model's database: engines, tables, schema creation and the table swap.

One code path for SQLite (aiosqlite, the embedded default) and PostgreSQL
(asyncpg), both through SQLAlchemy Core.

Invariants:
- Every timestamp goes in and comes out as an aware UTC ``datetime``
  (:class:`UtcDateTime`); SQLite stores it as fixed-width text, so text
  order is time order and keyset pagination works the same on both.
- Every use of the database goes through :meth:`Database.read` or
  :meth:`Database.write`, bounded in time, behind a circuit breaker, with
  outages answered as UNAVAILABLE naming the database
  (:mod:`query_svc.db_guard`).
- Writes happen only inside :meth:`Database.write`, one transaction each. On
  SQLite that transaction starts with ``BEGIN IMMEDIATE`` (the write lock is
  taken up front, so two writers queue on ``busy_timeout`` instead of one
  failing on a lock upgrade), and DDL is transactional (we emit BEGIN
  ourselves; the sqlite3 module's legacy mode would autocommit DDL).
- Tables can be defined under another name (``suffix``) with uniquely named
  constraints and indexes (``token``), so a rebuild can fill fresh tables
  beside the live ones and :func:`swap_in` can rename them over the live
  ones in one transaction, on both databases.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from query_svc.db_guard import Guard
from query_svc.settings import DatabaseLimits, QuerySettings
from service_kit import schema_versions
from service_kit.circuit_breaker import CircuitBreaker
from service_kit.dependency_errors import Dependency
from service_kit.limit_store import LIMIT_METADATA
from service_kit.schema_versions import Migration, SchemaReport
from service_kit.sql_schema import SqlSchema

log = logging.getLogger(__name__)

CHECKPOINT_NAME: Final = "read_model"
"""Name of the live projection's row in ``projection_checkpoints``."""

USERS: Final = "users"
AUTH: Final = "auth_projections"
LOGINS: Final = "login_histories"
CHECKPOINTS: Final = "projection_checkpoints"
TABLE_NAMES: Final[tuple[str, ...]] = (USERS, AUTH, LOGINS, CHECKPOINTS)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text, to which
    the zone is re-attached on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Tables:
    """The four read-model tables, under one naming (live or a rebuild's)."""

    metadata: MetaData
    users: Table
    auth: Table
    logins: Table
    checkpoints: Table

    @property
    def all(self) -> tuple[Table, ...]:
        """In creation order (and the order :data:`TABLE_NAMES` lists them)."""
        return (self.users, self.auth, self.logins, self.checkpoints)


def define_tables(*, suffix: str = "", token: str = "") -> Tables:
    """The read-model tables named ``<name><suffix>``.

    ``token`` is appended to every constraint and index name: PostgreSQL
    (and SQLite, for indexes) keep those names across a table rename, so a
    rebuild's tables need names that cannot collide with the live ones'.
    """
    md = MetaData()

    def n(kind: str, name: str) -> str:
        return f"{kind}_{name}_{token}" if token else f"{kind}_{name}"

    users = Table(
        USERS + suffix,
        md,
        Column("id", String(128), nullable=False),
        Column("email", String(254), nullable=False),
        Column("role", String(32), nullable=False),
        Column("status", String(16), nullable=False),
        Column("version", Integer, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("last_login_at", UtcDateTime, nullable=True),
        Column("login_count", Integer, nullable=False),
        Column("deactivated_at", UtcDateTime, nullable=True),
        Column("email_verified", Boolean, nullable=False),
        PrimaryKeyConstraint("id", name=n("pk", USERS)),
    )
    Index(n("ix", "users_created"), users.c.created_at, users.c.id)
    Index(n("ix", "users_status_created"), users.c.status, users.c.created_at, users.c.id)
    auth = Table(
        AUTH + suffix,
        md,
        Column("user_id", String(128), nullable=False),
        Column("email", String(254), nullable=False),
        Column("password_hash", Text, nullable=False),
        Column("role", String(32), nullable=False),
        Column("status", String(16), nullable=False),
        Column("version", Integer, nullable=False),
        # domain.UserState.credential_version: what a login's tokens carry as cv;
        # with the kept session and its floor, the user's domain.CredentialEpoch.
        Column("credential_version", Integer, nullable=False),
        Column("kept_session_id", String(64), nullable=False, server_default=""),
        Column("kept_floor", Integer, nullable=False, server_default="0"),
        PrimaryKeyConstraint("user_id", name=n("pk", AUTH)),
        UniqueConstraint("email", name=n("uq", "auth_email")),
    )
    logins = Table(
        LOGINS + suffix,
        md,
        # The global position of the user.login.recorded event: unique,
        # stable across rebuilds, and a tie-breaker for equal login times.
        Column("id", BigInteger, nullable=False, autoincrement=False),
        Column("user_id", String(128), nullable=False),
        Column("login_at", UtcDateTime, nullable=False),
        Column("client_address", String(255), nullable=False),
        Column("version", Integer, nullable=False),
        PrimaryKeyConstraint("id", name=n("pk", LOGINS)),
    )
    Index(n("ix", "logins_user_at"), logins.c.user_id, logins.c.login_at.desc(), logins.c.id.desc())
    checkpoints = Table(
        CHECKPOINTS + suffix,
        md,
        Column("name", String(64), nullable=False),
        Column("position", BigInteger, nullable=False),
        PrimaryKeyConstraint("name", name=n("pk", CHECKPOINTS)),
    )
    return Tables(md, users, auth, logins, checkpoints)


LIVE: Final = define_tables()
"""The live tables every query reads."""


def _sqlite_engine(path: str, *, immediate: bool, busy_timeout: float) -> AsyncEngine:
    engine = create_async_engine(
        URL.create("sqlite+aiosqlite", database=path),
        pool_size=8 if not immediate else 2,
        max_overflow=8,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Take transaction control from the sqlite3 module (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode; a power cut may
        # lose the last commits, which the projector re-applies from the store.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Freed space (an updated or deleted row, an index entry) is zeroed, so an
        # erased user's address does not linger in the file's free space.
        cursor.execute("PRAGMA secure_delete=ON")
        # How long a statement waits for another writer's lock (e.g. a rebuild's):
        # the engine's bound, so a locked database cannot hold a use past it.
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _postgres_engine(settings: QuerySettings) -> AsyncEngine:
    pg = settings.postgres
    # asyncpg's prepared-statement cache is on: without it every
    # statement costs a Parse round trip before its Execute (a min_position
    # read's p50 here: 28.8 -> 25.4 ms and 54 -> 31.5 ms in two runs of
    # bench.ryw_breakdown). A rebuild's swap (tables renamed and
    # dropped) does not break cached statements: PostgreSQL re-analyses one
    # whose tables changed, finding the swapped-in table by name, which has the
    # same columns (tests/integration/query_svc/test_rebuild.py swaps twice
    # under a live projector and reads through the same pool afterwards).
    url = pg.url(statement_cache=True)
    # A fixed pool: overflow connections would be opened and closed under
    # load (each connect negotiates TLS and loads type codecs, ~ms of CPU).
    # No pre-ping: it costs a round trip per checkout on the projector's and
    # every query's path; a connection found dead (database restarted, or an
    # idle timeout in between) fails its call with UNAVAILABLE and SQLAlchemy
    # then recycles the whole pool.
    # Every use is bounded by query_svc.db_guard; the timeouts here are
    # backstops for what runs outside a use (the pool's own connects) and
    # make the server drop statements nobody waits for any more.
    limits = settings.db_limits
    return create_async_engine(
        url,
        pool_size=20,
        max_overflow=0,
        pool_timeout=limits.write,
        # Replace connections before idle timeouts (PgBouncer, firewalls) cut them.
        pool_recycle=1800,
        connect_args={
            "server_settings": {
                "search_path": pg.schema,
                "statement_timeout": str(round(limits.write * 1000)),
            },
            "timeout": max(limits.read, 1.0),
            "command_timeout": limits.write,
        },
    )


class Database:
    """The read model's connections: one engine for writes, one for reads.

    On PostgreSQL both share one pool, reads in autocommit (one statement
    each); on SQLite the writer's transactions begin IMMEDIATE and the
    reader's are plain (a read sees one snapshot). Every use is
    bounded (``limits``), refused at once while the database is known down
    (``breaker``), and a database that cannot serve surfaces as
    :class:`~service_kit.dependency_errors.DependencyUnavailable` (gRPC
    UNAVAILABLE naming the database and why), never as an internal error.
    """

    def __init__(
        self,
        *,
        writer: AsyncEngine,
        reader: AsyncEngine,
        backend: str,
        where: str = "",
        limits: DatabaseLimits | None = None,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.backend = backend
        self.limits = limits = limits or DatabaseLimits()
        self.dependency = Dependency("read model database", where or backend)
        self.breaker = CircuitBreaker(
            self.dependency,
            failures_to_open=limits.breaker_failures,
            reset_after=limits.breaker_reset,
        )
        self._guard = Guard(self.breaker)

    @classmethod
    def from_settings(cls, settings: QuerySettings) -> Database:
        """Engines for the configured backend (no connection is made yet)."""
        limits = settings.db_limits
        if settings.db_backend == "postgres":
            engine = _postgres_engine(settings)
            pg = settings.postgres
            return cls(
                writer=engine,
                # Same pool; reads in autocommit: a read is one SELECT, which
                # PostgreSQL's READ COMMITTED would run on its own snapshot
                # inside a transaction too, and without one it costs one round
                # trip instead of three (BEGIN, SELECT, ROLLBACK): 1.26-1.45 ->
                # 1.0 ms per read here, CPU alike.
                reader=engine.execution_options(isolation_level="AUTOCOMMIT"),
                backend="postgres",
                where=pg.where,
                limits=limits,
            )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = str(settings.sqlite_path)
        return cls(
            writer=_sqlite_engine(path, immediate=True, busy_timeout=limits.write),
            reader=_sqlite_engine(path, immediate=False, busy_timeout=limits.read),
            backend="sqlite",
            where=f"SQLite at {path}",
            limits=limits,
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on exit, rolled back on error."""
        async with self._guard.use(self.writer, limit=self.limits.write, transaction=True) as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a transaction, rolled back on exit)."""
        async with self._guard.use(self.reader, limit=self.limits.read, transaction=False) as conn:
            yield conn

    async def purge_old_pages(self) -> None:
        """After an erasure: on SQLite, copies the WAL into the database and truncates
        it, so no older version of a page (which may hold an erased value) survives
        in the WAL. PostgreSQL keeps dead row versions until (auto)vacuum reclaims
        them; nothing is done here for it."""
        if self.backend != "sqlite":
            return
        path = self.writer.url.database
        assert path is not None

        def checkpoint() -> None:
            db = sqlite3.connect(path, timeout=self.limits.write)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()

        await asyncio.to_thread(checkpoint)

    async def ping(self) -> None:
        """One ``SELECT 1`` within the read bound, whatever the breaker says (health
        checks); its outcome is reported to the breaker."""
        async with self._guard.use(
            self.reader, limit=self.limits.read, transaction=False, probe=True
        ) as conn:
            await conn.execute(text("SELECT 1"))

    async def ensure_schema(
        self, *, schema: str = "", also: Sequence[MetaData] = (), migrate: bool = False
    ) -> SchemaReport:
        """Creates the PostgreSQL schema (if given) and checks the tables' version.

        An empty database gets the live tables and ``also`` (tables that are
        not projections: ``query_svc.session_tables``) at the code's version;
        a database at another version is refused (SchemaMismatch) unless
        ``migrate`` (``cqrs-admin migrate``): then pending migrations run.
        """
        if self.backend == "postgres" and schema:
            async with self.write() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        async with self.write() as conn:
            adapter = SqlSchema(
                conn,
                description=f"read model ({self.dependency.where})",
                marker=USERS,
                metadata=[LIVE.metadata, *also],
            )
            run = schema_versions.migrate if migrate else schema_versions.prepare
            report = await run(adapter, MIGRATIONS)
            await ensure_checkpoint_row(conn, LIVE)
        return report

    async def close(self) -> None:
        await self._guard.close()
        await self.writer.dispose()
        if self.reader.sync_engine.pool is not self.writer.sync_engine.pool:
            await self.reader.dispose()


async def _baseline(schema: SqlSchema) -> None:
    """Version 1: the tables as they were before versions. Projection tables that
    lack a column (written by a release older still) are dropped and made anew at
    checkpoint 0: the projector rebuilds them from the event log."""
    if await schema.conn.run_sync(_outdated, LIVE):
        log.warning("read model tables are of an older release; rebuilding from events")
        await drop_tables(schema.conn, LIVE)
    await schema.create_current()


# The schema's history, oldest first. To change the schema: append
# Migration(N + 1, "what", function) and change define_tables (or
# query_svc.session_tables) to match, so that a fresh database (created from
# the definitions) equals a migrated one. A projection table may also be
# migrated by dropping it and setting the checkpoint to 0 (a rebuild).
async def _limit_events(schema: SqlSchema) -> None:
    """Version 2: ``limit_events``, the login and request limits' bookings (kept, not
    rebuilt: they are not projections)."""
    await schema.conn.run_sync(LIMIT_METADATA.create_all, checkfirst=True)


MIGRATIONS: tuple[Migration[SqlSchema], ...] = (
    Migration(1, "baseline: projections, checkpoints, sessions, mail outbox", _baseline),
    Migration(2, "limit_events: login and request limits shared by every instance", _limit_events),
)


def _outdated(sync_conn: Any, tables: Tables) -> bool:
    """Whether an existing table lacks a column its definition has."""
    inspector = inspect(sync_conn)
    for table in tables.all:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        if not {column.name for column in table.columns} <= present:
            return True
    return False


async def ensure_checkpoint_row(conn: AsyncConnection, tables: Tables) -> None:
    """Inserts the projection's checkpoint at 0 unless it exists."""
    cp = tables.checkpoints
    row = (await conn.execute(cp.select().where(cp.c.name == CHECKPOINT_NAME))).first()
    if row is None:
        await conn.execute(cp.insert().values(name=CHECKPOINT_NAME, position=0))


async def read_checkpoint(conn: AsyncConnection, tables: Tables) -> int:
    """The position up to which ``tables`` reflect the event log."""
    cp = tables.checkpoints
    value = (
        await conn.execute(
            cp.select().with_only_columns(cp.c.position).where(cp.c.name == CHECKPOINT_NAME)
        )
    ).scalar_one_or_none()
    return int(value or 0)


def _quote(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


async def drop_tables(conn: AsyncConnection, tables: Tables) -> None:
    """Drops ``tables`` where they exist."""
    for table in reversed(tables.all):
        await conn.execute(text(f"DROP TABLE IF EXISTS {_quote(conn, table.name)}"))


async def create_tables(conn: AsyncConnection, tables: Tables) -> None:
    """Creates ``tables`` (with their indexes) and their checkpoint row at 0."""
    await conn.run_sync(tables.metadata.create_all, checkfirst=False)
    await ensure_checkpoint_row(conn, tables)


async def swap_in(conn: AsyncConnection, *, live: Tables, fresh: Tables) -> None:
    """Replaces the live tables by ``fresh`` ones, inside the caller's transaction.

    Both databases run DDL transactionally, so readers see either the old
    tables or the new ones, never a mix.
    """
    await drop_tables(conn, live)
    for old, new in zip(live.all, fresh.all, strict=True):
        await conn.execute(
            text(f"ALTER TABLE {_quote(conn, new.name)} RENAME TO {_quote(conn, old.name)}")
        )
