"""command_svc's connection to the PostgreSQL that holds its shared budgets.

With ``COMMAND_LIMITS_BACKEND=postgres`` (the production stack) the
registration and old-password budgets are rows of ``limit_events``
(:mod:`service_kit.limit_store`) in the read model's PostgreSQL
(``POSTGRES_QUERY_*``, the schema ``POSTGRES_QUERY_SCHEMA``): every
command_svc instance counts the same rows, and a restart forgets nothing.
query_svc's login budgets live in the same table under other scopes.

Invariants:
- :meth:`LimitsDatabase.ensure_table` creates the schema and the table when
  missing (command_svc starts before query_svc, which would create them),
  under an advisory lock so that instances starting together do not race;
  query_svc's own migration creates the same table only if it is missing.
- Every statement is bounded (``timeout``: the pool's checkout, the connect,
  the server's ``statement_timeout``); PostgreSQL down makes the budgeted
  calls UNAVAILABLE (:mod:`service_kit.dependency_errors`), never unlimited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from service_kit.limit_store import LIMIT_METADATA, lock_keys
from service_kit.postgres_settings import PostgresSettings

__all__ = ["LimitsDatabase"]


class LimitsDatabase:
    """A small pool to one PostgreSQL database (see the module docstring)."""

    def __init__(self, settings: PostgresSettings, *, timeout: float) -> None:
        self.settings = settings
        self._engine = create_async_engine(
            settings.url(),
            pool_size=5,
            max_overflow=0,
            pool_timeout=timeout,
            pool_recycle=1800,  # before idle timeouts (PgBouncer, firewalls) cut them
            pool_pre_ping=True,  # a budget check is rare next to its bcrypt run
            connect_args={
                "server_settings": {
                    "search_path": settings.schema,
                    "statement_timeout": str(round(timeout * 1000)),
                },
                "timeout": timeout,
                "command_timeout": timeout,
            },
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed on exit, rolled back on error."""
        async with self._engine.begin() as conn:
            yield conn

    async def ensure_table(self) -> None:
        """Creates the schema and ``limit_events`` if they are missing."""
        async with self.write() as conn:
            await lock_keys(conn, ["schema:limit_events"])
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.settings.schema}"'))
            await conn.run_sync(LIMIT_METADATA.create_all, checkfirst=True)

    async def close(self) -> None:
        await self._engine.dispose()
