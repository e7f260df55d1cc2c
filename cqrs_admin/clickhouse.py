"""A short ClickHouse session for the admin tool: one connection, errors as StorageUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from store_svc import clickhouse_client
from store_svc.engine import ClickHouseConfig, StorageUnavailable
from store_svc.engine.clickhouse_storage import QueryParams, QueryRunner

__all__ = ["session"]


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
