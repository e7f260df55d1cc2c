"""The schema runner's adapter for SQLAlchemy stores (SQLite files, PostgreSQL).

The version table is ``schema_migrations(version, summary, applied_at)``,
created in the connection's default schema (PostgreSQL: the first of
``search_path``), beside the tables it describes. Everything runs on the
caller's connection, inside the caller's transaction: on SQLite and
PostgreSQL DDL is transactional, so a migration and its version row commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service_kit.schema_versions import MIGRATIONS_TABLE

__all__ = ["SqlSchema", "probe_version"]

_metadata = MetaData()
_migrations = Table(
    MIGRATIONS_TABLE,
    _metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("summary", Text, nullable=False),
    Column("applied_at", Text, nullable=False),  # ISO 8601, UTC: the same text on both databases
)


def probe_version(sync_conn: Any, marker: str) -> int | None:
    """On a synchronous connection: None if neither the version table nor ``marker``
    exists (an empty store), else the store's version (0: tables without versions)."""
    inspector = inspect(sync_conn)
    if inspector.has_table(MIGRATIONS_TABLE):
        value = sync_conn.execute(select(func.max(_migrations.c.version))).scalar()
        return int(value or 0)
    return 0 if inspector.has_table(marker) else None


class SqlSchema:
    """A store whose current schema is ``metadata`` and whose presence is told by
    the table ``marker`` (one every version of the store has)."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        description: str,
        marker: str,
        metadata: Sequence[MetaData],
    ) -> None:
        self.conn = conn
        self._description = description
        self._marker = marker
        self._metadata = tuple(metadata)

    @property
    def description(self) -> str:
        return self._description

    async def found_version(self) -> int | None:
        return await self.conn.run_sync(probe_version, self._marker)

    async def create_current(self) -> None:
        """Creates every table of the current definitions that does not exist yet."""
        for metadata in self._metadata:
            await self.conn.run_sync(metadata.create_all, checkfirst=True)

    async def record(self, version: int, summary: str) -> None:
        await self.conn.run_sync(_metadata.create_all, checkfirst=True)
        await self.conn.execute(
            insert(_migrations).values(
                version=version, summary=summary, applied_at=datetime.now(UTC).isoformat()
            )
        )
