"""A deployment for the admin tests: its environment, the system running on it,
``cqrs-admin`` run against it as a separate process, and writes that keep coming.

The services run in this test's event loop (store, command and query services,
as ``make up`` and the compose stack run them); ``cqrs-admin`` runs as its own
process, as an operator would run it, so the services keep serving meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from cqrs.query.v1 import query_pb2_grpc as query_grpc

from command_svc import app as command_app
from command_svc.settings import CommandSettings
from query_svc import app as query_app
from query_svc.settings import QuerySettings
from store_svc import app as store_app
from store_svc.settings import StoreSettings
from tests import auth_support

PASSWORD = "correct horse battery"
_STOP_SECONDS = 60.0  # one service's stop; a few seconds when healthy
# Variables of the caller's shell that would point cqrs-admin at other stores.
_OURS = ("CLICKHOUSE_", "POSTGRES_", "KAFKA_", "DATA_DIR", "EVENT_STORE_", "QUERY_", "STORE_")


@dataclass(frozen=True, slots=True)
class Admin:
    """One finished ``cqrs-admin`` run."""

    code: int
    out: str
    err: str


async def cqrs_admin(env: dict[str, str], *args: str) -> Admin:
    """Runs ``cqrs-admin ARGS`` in ``env`` (the deployment's variables only)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cqrs_admin",
        *args,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode is not None
    return Admin(process.returncode, out.decode(), err.decode())


@dataclass(slots=True)
class Running:
    """The three services on one deployment, and clients of them."""

    store: store_app.StoreService
    command: command_app.CommandService
    query: query_app.QueryService
    commands: command_grpc.CommandServiceAsyncStub
    queries: query_grpc.QueryServiceAsyncStub


@asynccontextmanager
async def running(env: dict[str, str]) -> AsyncIterator[Running]:
    full = {**auth_support.TEST_ENV, "BCRYPT_COST": "4", **env}
    store = await store_app.start(
        StoreSettings.from_env({**full, "STORE_GRPC_LISTEN": "127.0.0.1:0"})
    )
    store_target = f"127.0.0.1:{store.server.port}"
    command = query = None
    try:
        command = await command_app.start(
            CommandSettings.from_env(
                {**full, "COMMAND_GRPC_LISTEN": "127.0.0.1:0", "STORE_GRPC_TARGET": store_target}
            )
        )
        query = await query_app.start(
            QuerySettings.from_env(
                {
                    **full,
                    "QUERY_GRPC_LISTEN": "127.0.0.1:0",
                    "STORE_GRPC_TARGET": store_target,
                    "COMMAND_GRPC_TARGET": f"127.0.0.1:{command.server.port}",
                }
            )
        )
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{command.server.port}") as command_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{query.server.port}") as query_channel,
        ):
            yield Running(
                store,
                command,
                query,
                command_grpc.CommandServiceStub(command_channel),
                query_grpc.QueryServiceStub(query_channel),
            )
    finally:
        # Bounded, so that a stop that hangs fails this test instead of the run.
        if query is not None:
            await asyncio.wait_for(query.stop(grace=1), _STOP_SECONDS)
        if command is not None:
            await asyncio.wait_for(command.stop(grace=1), _STOP_SECONDS)
        await asyncio.wait_for(store.stop(grace=1), _STOP_SECONDS)


@dataclass(slots=True)
class Writes:
    """Registrations sent continuously; ``acked`` lists (user id, email, position) of
    every one the system acknowledged, in acknowledgement order."""

    commands: command_grpc.CommandServiceAsyncStub
    acked: list[tuple[str, str, int]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, writers: int = 3) -> None:
        self._tasks = [asyncio.create_task(self._write(n)) for n in range(writers)]

    async def _write(self, writer: int) -> None:
        run = uuid.uuid4().hex[:8]
        n = 0
        while not self._stop.is_set():
            email = f"w{writer}-{n}-{run}@example.com"
            reply = await self.commands.Register(
                cmd.RegisterRequest(email=email, password=PASSWORD), timeout=20
            )
            self.acked.append((reply.id, email, int(reply.position)))
            self._grew.set()
            n += 1

    async def stop(self) -> None:
        """Stops writing; raises the first writer's error, if one failed."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def cancel(self) -> None:
        """Ends the writers at once (a test that failed midway)."""
        for task in self._tasks:
            task.cancel()

    async def until(self, count: int) -> None:
        while len(self.acked) < count:
            self._grew.clear()
            await asyncio.wait_for(self._grew.wait(), 30)
