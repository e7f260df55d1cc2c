"""ClickHouse for the admin tool: a short session (one connection, errors as
StorageUnavailable), and the event storage opened as a writer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from store_svc import clickhouse_client
from store_svc.engine import ClickHouseConfig, ClickHouseStorage, StorageUnavailable
from store_svc.engine.clickhouse_storage import QueryParams, QueryRunner

__all__ = ["session", "writing"]


@asynccontextmanager
async def session(config: ClickHouseConfig) -> AsyncIterator[QueryRunner]:
    """A runner of statements on one connection to the server's ``default`` database
    (so it works before the event store's database exists; statements name it)."""
    where = f"{config.host}:{config.port}"
    try:
        connection = clickhouse_client.connection(
            config, timeout=config.load_timeout, database="default"
        )
        async with connection as conn:

            async def run(
                operation: str, statement: str, params: QueryParams
            ) -> list[tuple[Any, ...]]:
                try:
                    async with conn.cursor() as cursor:
                        await cursor.execute(statement, params)
                        rows: list[tuple[Any, ...]] = await cursor.fetchall()
                        return rows
                except Exception as exc:
                    raise StorageUnavailable(
                        f"ClickHouse {operation} at {where} failed: {exc!r}"
                    ) from exc

            yield run
    except StorageUnavailable:
        raise
    except Exception as exc:
        raise StorageUnavailable(f"ClickHouse at {where}: cannot connect: {exc!r}") from exc


@asynccontextmanager
async def writing(config: ClickHouseConfig) -> AsyncIterator[ClickHouseStorage]:
    """The event storage, holding the writer lease (no store_svc may write meanwhile),
    with its epoch's fence recorded before the first write as a store_svc would: the
    rows written are fenced like any writer's (see store_svc/engine/clickhouse_fencing.py).
    Closing releases the lease."""
    storage = await ClickHouseStorage.open(config)
    try:
        await storage.acquire_writer_lock()
        await storage.load_state()
        yield storage
    finally:
        await storage.close()
