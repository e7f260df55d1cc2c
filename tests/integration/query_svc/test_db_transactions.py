"""How the read model's connections run statements, on each backend.

A write is one transaction (every statement in it, or none). On PostgreSQL
a read runs in autocommit (each SELECT on its own, as READ COMMITTED would
anyway: no BEGIN or ROLLBACK round trips), and a connection that served a
read serves a write in a transaction again, from the same pool. On SQLite
a read sees one snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from query_svc.db import Database
from query_svc.settings import QuerySettings

_TXID = text("SELECT txid_current()")


async def test_writes_are_transactions_and_postgres_reads_autocommit(
    backend: str, read_model_settings: Callable[..., QuerySettings]
) -> None:
    settings = read_model_settings()
    db = Database.from_settings(settings)
    try:
        schema = settings.postgres.schema if backend == "postgres" else ""
        await db.ensure_schema(schema=schema)  # the test's own PostgreSQL schema
        if backend == "postgres":
            for _ in range(3):  # alternate on the same pool: the mode never leaks
                async with db.read() as conn:
                    first = (await conn.execute(_TXID)).scalar()
                    second = (await conn.execute(_TXID)).scalar()
                assert first != second  # two statements, two transactions
                async with db.write() as conn:
                    first = (await conn.execute(_TXID)).scalar()
                    second = (await conn.execute(_TXID)).scalar()
                assert first == second  # one transaction
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE tx_probe (n INTEGER)"))
        try:
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO tx_probe VALUES (1)"))
                await conn.execute(text("INSERT INTO tx_probe VALUES (2)"))
            async with db.read() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM tx_probe"))).scalar() == 2
        finally:
            async with db.write() as conn:
                await conn.execute(text("DROP TABLE tx_probe"))
    finally:
        await db.close()
