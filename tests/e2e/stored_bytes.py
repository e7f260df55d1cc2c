"""Where a value may rest once written: every store of a running system, read raw.

``resting_hits`` answers which places still hold any of the given strings:

- embedded stack: the raw bytes of every file under the data folder (SQLite
  databases with their WAL, the key store, checkpoints); mail already sent is
  left out (delivered mail is the recipient's, not the system's record);
- production stack: every row of every ClickHouse table of the run's database
  (events, snapshots, ids, lease), every record of the run's Kafka topic
  (read from the beginning), every row of every table of the run's
  PostgreSQL schema (the read model, sessions, checkpoints).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer
from asynch.connection import Connection

from tests.e2e.system_process import SystemProcess

__all__ = ["resting_hits"]


def resting_hits(system: SystemProcess, needles: list[str]) -> list[str]:
    """Descriptions of every place holding one of ``needles`` (empty: none does)."""
    if system.env.get("EVENT_STORE_BACKEND") == "clickhouse":
        return asyncio.run(_production_hits(system.env, needles))
    return _file_hits(system.data_dir, needles)


def _file_hits(folder: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "mail" in path.relative_to(folder).parts:
            continue
        raw = path.read_bytes()
        hits += [f"{path.name}: {n!r}" for n in needles if n.encode() in raw]
    return hits


async def _production_hits(env: dict[str, str], needles: list[str]) -> list[str]:
    return (
        await _clickhouse_hits(env, needles)
        + await _kafka_hits(env, needles)
        + await _postgres_hits(env, needles)
    )


async def _clickhouse_hits(env: dict[str, str], needles: list[str]) -> list[str]:
    host, _, port = env["CLICKHOUSE_HOST"].rpartition(":")
    db = env["CLICKHOUSE_DB"]
    ch = Connection(
        user=env.get("CLICKHOUSE_USER", "default"),
        password=env.get("CLICKHOUSE_PASSWORD", ""),
        host=host,
        port=int(port),
    )
    await ch.connect()
    hits = []
    try:
        async with ch.cursor() as cursor:
            await cursor.execute(f"SELECT name FROM system.tables WHERE database = '{db}'")
            tables = [row[0] for row in await cursor.fetchall()]
            assert "events" in tables, tables
            for table in tables:
                await cursor.execute(f"SELECT * FROM {db}.{table}")
                text = repr(await cursor.fetchall())
                hits += [f"ClickHouse {table}: {n!r}" for n in needles if n in text]
    finally:
        await ch.close()
    return hits


async def _kafka_hits(env: dict[str, str], needles: list[str]) -> list[str]:
    consumer = AIOKafkaConsumer(
        env["KAFKA_TOPIC"],
        bootstrap_servers=env["KAFKA_BROKER"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    hits: list[str] = []
    records = 0
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for messages in batch.values():
                for message in messages:
                    records += 1
                    raw = message.value or b""
                    hits += [
                        f"Kafka offset {message.offset}: {n!r}"
                        for n in needles
                        if n.encode() in raw
                    ]
    finally:
        await consumer.stop()
    assert records > 0, "the topic held no record: nothing was scanned"
    return hits


async def _postgres_hits(env: dict[str, str], needles: list[str]) -> list[str]:
    schema = env["POSTGRES_QUERY_SCHEMA"]
    pg = await asyncpg.connect(
        host=env["POSTGRES_QUERY_HOST"],
        port=int(env.get("POSTGRES_QUERY_PORT", "5432")),
        user=env.get("POSTGRES_QUERY_USER", "postgres"),
        password=env.get("POSTGRES_QUERY_PASSWORD", ""),
        database=env.get("POSTGRES_QUERY_DB", "query_db"),
    )
    hits = []
    try:
        tables = [
            row["tablename"]
            for row in await pg.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
            )
        ]
        assert "users" in tables, tables
        for table in tables:
            rows = await pg.fetch(f'SELECT t::text AS row FROM "{schema}"."{table}" t')
            text = "\n".join(r["row"] for r in rows)
            hits += [f"PostgreSQL {table}: {n!r}" for n in needles if n in text]
    finally:
        await pg.close()
    return hits
