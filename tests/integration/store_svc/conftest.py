"""Fixtures: a real store_svc (in-process gRPC server) on each storage backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asynch.connection import Connection
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from store_svc import app
from store_svc.settings import StoreSettings
from tests.auth_support import SERVICE, TEST_ENV, channel_as
from tests.integration.store_svc.support import StoreStub

BACKENDS = ["sqlite", "clickhouse"]


def store_env(backend: str, data_dir: Path) -> dict[str, str]:
    """Environment for a store on a fresh SQLite file or a fresh ClickHouse database."""
    env = {
        "DATA_DIR": str(data_dir),
        "STORE_GRPC_LISTEN": "127.0.0.1:0",
        "EVENT_STORE_BACKEND": backend,
        "SNAPSHOT_EVERY": "0",
        **TEST_ENV,
    }
    if backend == "clickhouse":
        if not os.environ.get("CLICKHOUSE_HOST"):
            pytest.skip("CLICKHOUSE_HOST is not set (make test sets it)")
        for key in ("CLICKHOUSE_HOST", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
            env[key] = os.environ.get(key, "")
        env["CLICKHOUSE_DB"] = f"test_{uuid.uuid4().hex[:12]}"
    return env


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[app.StoreService, StoreStub]]:
    settings = StoreSettings.from_env(store_env(request.param, tmp_path))
    service = await app.start(settings)
    channel = channel_as(f"127.0.0.1:{service.server.port}", SERVICE)
    try:
        yield service, pb_grpc.EventStoreServiceStub(channel)
    finally:
        await channel.close(None)
        await service.stop(grace=1)
        if request.param == "clickhouse":
            await drop_clickhouse_database(settings)


async def drop_clickhouse_database(settings: StoreSettings) -> None:
    """Drops the per-test ClickHouse database so test runs leave nothing behind."""
    ch = settings.clickhouse
    conn = Connection(user=ch.user, password=ch.password, host=ch.host, port=ch.port)
    await conn.connect()
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(f"DROP DATABASE IF EXISTS {ch.database}")
    finally:
        await conn.close()
