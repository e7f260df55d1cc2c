"""Fixtures: real gRPC servers (fakes and a real store_svc) behind a real gateway.

Every server is started in-process on port 0 exactly as in production
(``service_kit.server.start_server``, ``store_svc.app.start``,
``gateway.app.start``) and the gateway is called over real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway import app as gateway_app
from gateway.settings import GatewaySettings
from service_kit.readiness import Check, Readiness
from service_kit.server import RunningServer, start_server
from store_svc import app as store_app
from store_svc.settings import StoreSettings
from tests import auth_support

from .fakes import FakeCommand, FakeQuery, FakeStore

VERIFIER = auth_support.TEST_TOKENS.verifier()


def bearer(subject: str, role: str) -> dict[str, str]:
    """An Authorization header with a token the backends accept."""
    token = auth_support.token(subject, role, f"{subject}@example.com")
    return {"Authorization": f"Bearer {token}"}


def gateway_settings(
    *, store: str, command: str, query: str, **overrides: object
) -> GatewaySettings:
    settings = GatewaySettings.from_env(
        {
            "GATEWAY_PORTS": "0,0,0",
            "STORE_GRPC_TARGET": store,
            "COMMAND_GRPC_TARGET": command,
            "QUERY_GRPC_TARGET": query,
            **auth_support.TEST_ENV,
            "GATEWAY_CALL_TIMEOUT_SECONDS": "1",
        }
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


@dataclass
class Fakes:
    query: FakeQuery
    command: FakeCommand
    store: FakeStore
    servers: list[RunningServer]
    query_readiness: Readiness

    def target(self, index: int) -> str:
        return f"127.0.0.1:{self.servers[index].port}"


@dataclass
class Running:
    """A started gateway and its base URLs, one per port."""

    gateway: gateway_app.Gateway

    @property
    def port(self) -> int:
        return self.gateway.ports[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        """The base URL of our own shapes."""
        return f"{self.url}/v1"

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway.ports]


@pytest.fixture(scope="module")
async def fakes() -> AsyncIterator[Fakes]:
    query, command, store = FakeQuery(), FakeCommand(), FakeStore(VERIFIER)
    # query's readiness is real, with checks whose results the tests set; the
    # fake store and command service have none (an older backend's UNIMPLEMENTED).
    readiness = Readiness(
        FakeQuery.SERVICE,
        [
            Check("read_model_db", query.database_check, required=True),
            Check("projector", query.projector_check, required=False),
        ],
        interval=3600,
    )
    servers = [
        await start_server("127.0.0.1:0", [store.registration()]),
        await start_server("127.0.0.1:0", [command.registration()]),
        await start_server("127.0.0.1:0", [query.registration(), readiness.registration()]),
    ]
    await readiness.start(servers[2].health)
    try:
        yield Fakes(query, command, store, servers, readiness)
    finally:
        await readiness.stop()
        for server in servers:
            await server.stop(grace=0.1)


@pytest.fixture(scope="module")
async def gateway(fakes: Fakes) -> AsyncIterator[Running]:
    settings = gateway_settings(
        store=fakes.target(0), command=fakes.target(1), query=fakes.target(2)
    )
    running = await gateway_app.start(settings)
    try:
        yield Running(running)
    finally:
        await running.stop()


@dataclass
class RealStore:
    service: store_app.StoreService
    gateway: Running

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.server.port}"


@pytest.fixture(scope="module")
async def real_store(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RealStore]:
    data_dir: Path = tmp_path_factory.mktemp("gateway-store")
    service = await store_app.start(
        StoreSettings.from_env(
            {
                "DATA_DIR": str(data_dir),
                "STORE_GRPC_LISTEN": "127.0.0.1:0",
                "EVENT_STORE_BACKEND": "sqlite",
                "SNAPSHOT_EVERY": "0",
                **auth_support.TEST_ENV,
            }
        )
    )
    target = f"127.0.0.1:{service.server.port}"
    # Command and query are not running: only the store's routes are used.
    settings = gateway_settings(
        store=target, command="127.0.0.1:1", query="127.0.0.1:1", call_timeout=10.0
    )
    running = await gateway_app.start(settings)
    try:
        yield RealStore(service, Running(running))
    finally:
        await running.stop()
        await service.stop(grace=1)
