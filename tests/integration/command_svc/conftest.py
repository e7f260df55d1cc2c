"""Fixtures: a real store_svc and a real command_svc, in-process, on port 0.

Each service is started through its own ``app.start``, exactly as in
production, and called through real grpc.aio clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as store_grpc

from command_svc import app as command_app
from command_svc.settings import AdminAccount, CommandSettings
from store_svc import app as store_app
from store_svc.settings import StoreSettings
from tests import auth_support

ADMIN = AdminAccount("admin@example.com", "admin-password-1")

Metadata = list[tuple[str, str]]


def bearer(subject: str, role: str, email: str = "", *, cv: int = 0) -> Metadata:
    """Authorization metadata for a user/admin/service token (``cv``: its credential version)."""
    return [("authorization", f"Bearer {auth_support.token(subject, role, email, cv=cv)}")]


@dataclass
class Stack:
    """A running store + command service and clients for both."""

    store: store_app.StoreService
    command: command_app.CommandService
    commands: command_grpc.CommandServiceAsyncStub
    events: store_grpc.EventStoreServiceAsyncStub
    service_md: Callable[[], Metadata]
    settings: CommandSettings


def command_settings(store_port: int, **overrides: object) -> CommandSettings:
    base = CommandSettings(
        listen="127.0.0.1:0",
        store_target=f"127.0.0.1:{store_port}",
        store_timeout=10.0,
        tokens=auth_support.TEST_TOKENS,
        bcrypt_cost=4,
        limits=auth_support.MANY_REGISTRATIONS,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def start_store(data_dir: Path, *, snapshot_every: int = 0) -> store_app.StoreService:
    env = {
        "DATA_DIR": str(data_dir),
        "STORE_GRPC_LISTEN": "127.0.0.1:0",
        "EVENT_STORE_BACKEND": "sqlite",
        "SNAPSHOT_EVERY": str(snapshot_every),
        **auth_support.TEST_ENV,
    }
    return await store_app.start(StoreSettings.from_env(env))


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    store = await start_store(tmp_path_factory.mktemp("store"), snapshot_every=3)
    settings = command_settings(store.server.port, admin=ADMIN)
    command = await command_app.start(settings)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{command.server.port}") as command_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{store.server.port}") as store_channel,
        ):
            yield Stack(
                store=store,
                command=command,
                commands=command_grpc.CommandServiceStub(command_channel),
                events=store_grpc.EventStoreServiceStub(store_channel),
                service_md=auth_support.service_identity("tests"),
                settings=settings,
            )
    finally:
        await command.stop(grace=1)
        await store.stop(grace=1)
