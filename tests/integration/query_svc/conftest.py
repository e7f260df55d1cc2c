"""Fixtures: a real store_svc, command_svc and query_svc in-process, on port 0.

The read model runs on SQLite and on the real PostgreSQL that
``scripts/infra.sh start postgres`` runs (env from ``scripts/infra.sh env``);
each test gets its own PostgreSQL schema, dropped afterwards, all named
after this session so that concurrent runs never meet.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from cqrs.eventstore.v1 import event_store_pb2 as es
from cqrs.eventstore.v1 import event_store_pb2_grpc as store_grpc
from cqrs.query.v1 import query_pb2_grpc as query_grpc
from sqlalchemy import text

from command_svc import app as command_app
from command_svc.settings import AdminAccount, CommandSettings
from query_svc import app as query_app
from query_svc.db import Database
from query_svc.settings import QuerySettings
from service_kit.auth import ROLE_ADMIN
from service_kit.passwords import PasswordHasher
from store_svc import app as store_app
from store_svc.settings import StoreSettings
from tests import auth_support
from tests.integration.query_svc.feeder import Feeder

ADMIN = AdminAccount("root@example.com", "root-password-1")
PASSWORD = "correct horse battery"
BACKENDS = ["sqlite", "postgres"]
SESSION = uuid.uuid4().hex[:8]
_PG_VARS = (
    "POSTGRES_QUERY_HOST",
    "POSTGRES_QUERY_PORT",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_QUERY_DB",
)

Metadata = list[tuple[str, str]]


def bearer(subject: str, role: str, email: str = "") -> Metadata:
    """Authorization metadata for a user/admin/service token."""
    return auth_support.bearer(subject, role, email)


ADMIN_MD = bearer("00000000-0000-4000-8000-000000000001", ROLE_ADMIN, "boss@example.com")
SERVICE_MD = auth_support.service_identity("query-tests")


def read_model_env(backend: str, data_dir: Path) -> dict[str, str]:
    """Environment for a read model on a fresh SQLite file or a fresh PostgreSQL schema."""
    env = {
        "DATA_DIR": str(data_dir),
        "QUERY_GRPC_LISTEN": "127.0.0.1:0",
        "QUERY_DB_BACKEND": backend,
        **auth_support.TEST_ENV,
        "BCRYPT_COST": "4",
    }
    if backend == "postgres":
        if not os.environ.get("POSTGRES_QUERY_HOST"):
            pytest.skip('POSTGRES_QUERY_HOST is not set (eval "$(scripts/infra.sh env)")')
        for key in _PG_VARS:
            env[key] = os.environ.get(key, "")
        env["POSTGRES_QUERY_SCHEMA"] = f"qtest_{SESSION}_{uuid.uuid4().hex[:8]}"
    return env


async def drop_schema(settings: QuerySettings) -> None:
    """Drops the test's PostgreSQL schema, so a run leaves nothing behind."""
    db = Database.from_settings(settings)
    try:
        async with db.write() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.postgres.schema}" CASCADE'))
    finally:
        await db.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def read_model_settings(
    backend: str, tmp_path: Path
) -> AsyncIterator[Callable[..., QuerySettings]]:
    """Builds settings for one fresh read model (same one for every call in a test)."""
    env = read_model_env(backend, tmp_path / "query")

    def build(**extra: str) -> QuerySettings:
        return QuerySettings.from_env({**env, **extra})

    yield build
    if backend == "postgres":
        await drop_schema(build())


@pytest.fixture(scope="session")
async def password_hash() -> str:
    hasher = PasswordHasher(4)
    try:
        return await hasher.hash(PASSWORD)
    finally:
        hasher.close()


@dataclass
class Stack:
    """A running store + command + query service, and clients for all three."""

    store: store_app.StoreService
    command: command_app.CommandService
    query: query_app.QueryService
    events: store_grpc.EventStoreServiceAsyncStub
    commands: command_grpc.CommandServiceAsyncStub
    queries: query_grpc.QueryServiceAsyncStub
    feeder: Feeder
    settings: QuerySettings

    async def settled(self) -> int:
        """Waits for the admin bootstrap; the store's last position after it."""
        if self.command.bootstrap is not None:
            await self.command.bootstrap
        return await self.head()

    async def head(self) -> int:
        """The store's last position."""
        response = await self.events.CountEvents(
            es.CountEventsRequest(), metadata=SERVICE_MD(), timeout=5
        )
        return int(response.count)


async def start_store(data_dir: Path, *, listen: str = "127.0.0.1:0") -> store_app.StoreService:
    env = {
        "DATA_DIR": str(data_dir),
        "STORE_GRPC_LISTEN": listen,
        "EVENT_STORE_BACKEND": "sqlite",
        "SNAPSHOT_EVERY": "0",
        **auth_support.TEST_ENV,
    }
    return await store_app.start(StoreSettings.from_env(env))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[store_app.StoreService]:
    service = await start_store(tmp_path / "store")
    try:
        yield service
    finally:
        await service.stop(grace=1)


@pytest.fixture
async def store_stub(
    store: store_app.StoreService,
) -> AsyncIterator[store_grpc.EventStoreServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as channel:
        yield store_grpc.EventStoreServiceStub(channel)


@pytest.fixture
def feeder(store_stub: store_grpc.EventStoreServiceAsyncStub) -> Feeder:
    return Feeder(store_stub, SERVICE_MD)


@pytest.fixture
def query_overrides() -> dict[str, str]:
    """Extra query_svc environment; tests override this fixture to change settings."""
    return {"QUERY_WAIT_TIMEOUT_MS": "3000"}


@pytest.fixture
async def stack(
    store: store_app.StoreService,
    store_stub: store_grpc.EventStoreServiceAsyncStub,
    feeder: Feeder,
    read_model_settings: Callable[..., QuerySettings],
    query_overrides: dict[str, str],
) -> AsyncIterator[Stack]:
    command = await command_app.start(
        CommandSettings(
            listen="127.0.0.1:0",
            store_target=f"127.0.0.1:{store.server.port}",
            store_timeout=10.0,
            tokens=auth_support.TEST_TOKENS,
            bcrypt_cost=4,
            admin=ADMIN,
            limits=auth_support.MANY_REGISTRATIONS,
        )
    )
    settings = read_model_settings(
        STORE_GRPC_TARGET=f"127.0.0.1:{store.server.port}",
        COMMAND_GRPC_TARGET=f"127.0.0.1:{command.server.port}",
        **query_overrides,
    )
    query = await query_app.start(settings)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{command.server.port}") as command_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{query.server.port}") as query_channel,
        ):
            yield Stack(
                store=store,
                command=command,
                query=query,
                events=store_stub,
                commands=command_grpc.CommandServiceStub(command_channel),
                queries=query_grpc.QueryServiceStub(query_channel),
                feeder=feeder,
                settings=settings,
            )
    finally:
        await query.stop(grace=1)
        await command.stop(grace=1)
