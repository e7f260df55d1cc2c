"""``cqrs-admin status``: positions, lags, the writer, schema versions, code version.

Read from the stores themselves (no token needed, nothing is created):
the event store's head position, the relay's saved position (how far Kafka
acknowledged), the read model's checkpoint (how far the projector applied),
who holds the writer lock or lease, and each store's schema version beside
the version this code needs. Lags are ``head - position``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from cqrs_admin import clickhouse
from cqrs_admin.stack import Stack, code_version
from cqrs_admin.writer import clickhouse_leases, sqlite_writer
from query_svc import db as read_model_db
from service_kit.schema_versions import current_version
from service_kit.sql_schema import probe_version
from store_svc.engine import StorageUnavailable, clickhouse_storage, sqlite_storage
from store_svc.relay_checkpoint import ClickHouseRelayCheckpoint, FileRelayCheckpoint

__all__ = ["Status", "collect"]


@dataclass(slots=True)
class StoreStatus:
    """One store: where, its schema version (None: absent or empty) and the code's."""

    where: str
    schema_version: int | None
    code_schema_version: int
    position: int | None = None  # event store: head; read model: projector checkpoint

    def schema_text(self) -> str:
        if self.schema_version is None:
            return f"none yet (created at {self.code_schema_version} on first start)"
        if self.schema_version == self.code_schema_version:
            return f"{self.schema_version} (current)"
        relation = "older" if self.schema_version < self.code_schema_version else "newer"
        hint = ": run `cqrs-admin migrate`" if relation == "older" else ""
        return (
            f"{self.schema_version} ({relation} than the code's {self.code_schema_version}{hint})"
        )


@dataclass(slots=True)
class Status:
    code_version: str
    event_store: StoreStatus
    read_model: StoreStatus
    writers: list[tuple[str, str]] = field(default_factory=list)  # (who, state)
    relay_topic: str = ""  # "" = relay off
    relay_position: int | None = None

    @property
    def projector_lag(self) -> int | None:
        head, applied = self.event_store.position, self.read_model.position
        return None if head is None or applied is None else head - applied

    @property
    def relay_lag(self) -> int | None:
        head = self.event_store.position
        return None if head is None or self.relay_position is None else head - self.relay_position

    def as_json(self) -> str:
        body: dict[str, Any] = asdict(self)
        body["writers"] = [{"who": who, "state": state} for who, state in self.writers]
        body["projector_lag"] = self.projector_lag
        body["relay_lag"] = self.relay_lag
        return json.dumps(body, indent=2)

    def text(self) -> str:
        es, rm = self.event_store, self.read_model
        writers = "; ".join(f"{state}: {who}" for who, state in self.writers) or "none running"
        relay = "off (no KAFKA_BROKER)"
        if self.relay_topic:
            relay = f"topic {self.relay_topic} at position {_num(self.relay_position)}"
            relay += f" (lag {_num(self.relay_lag)})"
        lines = [
            f"code version      {self.code_version}",
            f"event store       {es.where}",
            f"  schema version  {es.schema_text()}",
            f"  head position   {_num(es.position)}",
            f"  writer          {writers}",
            f"relay             {relay}",
            f"read model        {rm.where}",
            f"  schema version  {rm.schema_text()}",
            f"  projector at    {_num(rm.position)} (lag {_num(self.projector_lag)})",
        ]
        return "\n".join(lines) + "\n"


def _num(value: int | None) -> str:
    return "-" if value is None else str(value)


def _sqlite_store(stack: Stack) -> tuple[StoreStatus, list[tuple[str, str]]]:
    path = stack.store.sqlite_path
    status = StoreStatus(
        stack.describe_event_store(), None, current_version(sqlite_storage.MIGRATIONS)
    )
    if path.exists():
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                status.schema_version = probe_version(conn, "events")
                if status.schema_version is not None:
                    head = conn.execute(text("SELECT coalesce(max(position), 0) FROM events"))
                    status.position = int(head.scalar_one())
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc  # the driver's one-line reason
            raise StorageUnavailable(f"SQLite event store {path}: cannot read: {reason}") from exc
        finally:
            engine.dispose()
    holder = sqlite_writer(path)
    return status, [(holder, "leader")] if holder else []


async def _clickhouse_store(stack: Stack) -> tuple[StoreStatus, list[tuple[str, str]]]:
    ch = stack.store.clickhouse
    status = StoreStatus(
        stack.describe_event_store(), None, current_version(clickhouse_storage.MIGRATIONS)
    )
    async with clickhouse.session(ch) as run:
        exists = await run(  # EXISTS DATABASE is newer than the oldest server supported
            "status",
            "SELECT count() FROM system.databases WHERE name = %(db)s",
            {"db": ch.database},
        )
        if not exists[0][0]:
            return status, []
        schema = clickhouse_storage.ClickHouseSchema(ch, run)
        status.schema_version = await schema.found_version()
        if status.schema_version is None:
            return status, []
        head = await run(
            "status", f"SELECT max(position) FROM {ch.database}.events_by_position", None
        )
        status.position = int(head[0][0])
        return status, await clickhouse_leases(stack.store.clickhouse, run)


async def _relay_position(stack: Stack) -> int | None:
    settings = stack.store
    if settings.backend == "clickhouse":
        checkpoint = ClickHouseRelayCheckpoint(
            settings=settings.clickhouse, topic=settings.relay.topic
        )
        return await checkpoint.load()
    file_checkpoint = FileRelayCheckpoint(folder=settings.data_dir, topic=settings.relay.topic)
    return await file_checkpoint.load()


async def _read_model(stack: Stack) -> StoreStatus:
    status = StoreStatus(
        stack.describe_read_model(), None, current_version(read_model_db.MIGRATIONS)
    )
    if stack.query.db_backend == "sqlite" and not stack.query.sqlite_path.exists():
        return status
    database = stack.read_model()
    try:
        async with database.read() as conn:
            status.schema_version = await conn.run_sync(probe_version, read_model_db.USERS)
            if status.schema_version is not None:
                status.position = await read_model_db.read_checkpoint(conn, read_model_db.LIVE)
    finally:
        await database.close()
    return status


async def collect(stack: Stack) -> Status:
    """Everything ``status`` prints; raises StorageUnavailable / DependencyUnavailable
    when a store cannot be read."""
    if stack.store.backend == "clickhouse":
        event_store, writers = await _clickhouse_store(stack)
    else:
        event_store, writers = _sqlite_store(stack)
    status = Status(code_version(), event_store, await _read_model(stack), writers)
    if stack.store.relay.enabled and event_store.schema_version is not None:
        status.relay_topic = stack.store.relay.topic
        status.relay_position = await _relay_position(stack)
    return status
