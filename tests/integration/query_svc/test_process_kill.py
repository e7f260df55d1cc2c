"""A query_svc process killed with SIGKILL mid-projection loses and repeats nothing."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable

import grpc
import pytest
from cqrs.query.v1 import query_pb2 as q
from cqrs.query.v1 import query_pb2_grpc as query_grpc
from sqlalchemy import select

from query_svc.db import LIVE, Database, read_checkpoint
from query_svc.settings import QuerySettings
from store_svc import app as store_app
from tests.integration.query_svc.conftest import SERVICE_MD
from tests.integration.query_svc.feeder import Feeder
from tests.integration.query_svc.support import assert_matches_store

pytestmark = pytest.mark.integration

_SERVING = re.compile(rb"query_svc serving gRPC on port (\d+)")


async def spawn(
    env: dict[str, str],
) -> tuple[asyncio.subprocess.Process, int, asyncio.Task[bytes]]:
    """Starts ``python -m query_svc``; returns it, its port, and its stderr drain."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "query_svc",
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stderr.readline()
            if not line:
                raise AssertionError(f"query_svc exited with {await process.wait()}")
            if match := _SERVING.search(line):
                break
    # Keep draining stderr so the child never blocks on a full pipe.
    drain = asyncio.create_task(process.stderr.read())
    return process, int(match.group(1)), drain


async def checkpoint(settings: QuerySettings) -> int:
    db = Database.from_settings(settings)
    try:
        async with db.read() as conn:
            return await read_checkpoint(conn, LIVE)
    finally:
        await db.close()


async def test_sigkill_mid_catch_up_then_restart(
    store: store_app.StoreService,
    feeder: Feeder,
    read_model_settings: Callable[..., QuerySettings],
    password_hash: str,
) -> None:
    await feeder.populate(users=150, logins_per_user=20, password_hash=password_hash)
    settings = read_model_settings(
        STORE_GRPC_TARGET=f"127.0.0.1:{store.server.port}",
        COMMAND_GRPC_TARGET="127.0.0.1:9",  # never called: nobody logs in
        QUERY_PROJECTOR_BATCH_MAX="50",  # many small commits, so the kill lands between some
    )
    env = {
        "DATA_DIR": str(settings.data_dir),
        "QUERY_GRPC_LISTEN": "127.0.0.1:0",
        "QUERY_DB_BACKEND": settings.db_backend,
        "KEYS_DIR": str(settings.tokens.keys_dir),
        "STORE_GRPC_TARGET": settings.store_target,
        "COMMAND_GRPC_TARGET": settings.command_target,
        "QUERY_PROJECTOR_BATCH_MAX": "50",
        "POSTGRES_QUERY_HOST": settings.postgres.host,
        "POSTGRES_QUERY_PORT": str(settings.postgres.port),
        "POSTGRES_QUERY_USER": settings.postgres.user,
        "POSTGRES_QUERY_PASSWORD": settings.postgres.password,
        "POSTGRES_QUERY_DB": settings.postgres.database,
        "POSTGRES_QUERY_SCHEMA": settings.postgres.schema,
    }

    process, _, drain = await spawn(env)
    for _ in range(300):  # kill it once it has committed something, but not everything
        if await checkpoint(settings) > 0:
            break
        await asyncio.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL
    await drain
    killed_at = await checkpoint(settings)
    assert 0 < killed_at <= feeder.head

    process, port, drain = await spawn(env)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = query_grpc.QueryServiceStub(channel)
            await stub.ListUsers(
                q.ListUsersRequest(min_position=feeder.head), metadata=SERVICE_MD(), timeout=30
            )
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        await drain

    db = Database.from_settings(settings)
    try:
        await assert_matches_store(db, feeder)
        async with db.read() as conn:
            positions = (await conn.execute(select(LIVE.logins.c.id))).scalars().all()
        assert len(positions) == len(set(positions)) == 150 * 20
    finally:
        await db.close()
