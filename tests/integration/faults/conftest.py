"""The production stack for fault tests: real processes on ClickHouse, Kafka and PostgreSQL.

Needs ``CLICKHOUSE_HOST``, ``KAFKA_BROKER`` and ``POSTGRES_QUERY_HOST`` (from
``eval "$(scripts/infra.sh env)"``, which CI runs); skipped otherwise. The
tests stop, crash and pause those servers: run them against a private
instance while anything else uses the usual one (README, "Tests"). Each
test gets a fresh ClickHouse database, Kafka topic and consumer group, and
PostgreSQL schema, all removed afterwards.

The services run with the bounds the tests check: commands 5 s
(``COMMAND_TIMEOUT_SECONDS``), reads 2 s (``QUERY_DB_READ_TIMEOUT_MS``, the
default), logins 10 s (the default), far below the gateway's 30 s.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2_grpc as cmd_grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as es_grpc
from cqrs.query.v1 import query_pb2 as q
from cqrs.query.v1 import query_pb2_grpc as q_grpc

from query_svc.db import Database
from query_svc.settings import QuerySettings
from store_svc.settings import StoreSettings
from tests.auth_support import SERVICE, TEST_ENV
from tests.integration.faults.support import Load, Service, check_acks_in_store, free_port
from tests.integration.kafka.support import (
    assert_read_model_equals_store,
    fresh_topic,
    store_truth,
    wait_until,
)
from tests.integration.query_svc.conftest import drop_schema
from tests.integration.store_svc.conftest import drop_clickhouse_database

_NEEDED = ("CLICKHOUSE_HOST", "KAFKA_BROKER", "POSTGRES_QUERY_HOST")
COMMAND_BOUND = 5.0
"""COMMAND_TIMEOUT_SECONDS of the stack's command_svc (seconds)."""
_PASS_THROUGH = (
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "KAFKA_BROKER",
    "POSTGRES_QUERY_HOST",
    "POSTGRES_QUERY_PORT",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_QUERY_DB",
)


@dataclass
class Stack:
    """store_svc + command_svc + query_svc processes, and clients for them."""

    store: Service
    command: Service
    query: Service
    gateway: Service
    store_settings: StoreSettings
    query_settings: QuerySettings
    channels: list[grpc.aio.Channel]

    def _channel(self, service: Service) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
        self.channels.append(channel)
        return channel

    def load(self, *, workers: int = 3) -> Load:
        """A command load through command_svc (not started yet)."""
        stub = cmd_grpc.CommandServiceStub(self._channel(self.command))
        return Load(stub, SERVICE, workers=workers)

    @property
    def queries(self) -> q_grpc.QueryServiceAsyncStub:
        return q_grpc.QueryServiceStub(self._channel(self.query))

    async def verify(
        self, load: Load, *, within: float = 60.0, others: Collection[str] = ()
    ) -> int:
        """Nothing acknowledged lost or doubled; the read model equals the store's fold.

        ``others``: users written outside ``load`` (by the test's own traffic), left
        out of the acknowledgement check (the read model check covers them).
        Returns the store's head position.
        """
        store = es_grpc.EventStoreServiceStub(self._channel(self.store))
        truth = await store_truth(store, lambda: SERVICE)
        loads = {p: e for p, e in truth.events.items() if e[0] not in others}
        counts = {k: n for k, n in truth.counts().items() if k[0] not in others}
        check_acks_in_store(load, loads, counts)
        queries = self.queries

        async def caught_up() -> bool:
            try:
                await queries.ListUsers(
                    q.ListUsersRequest(page_size=1, min_position=truth.head),
                    metadata=SERVICE,
                    timeout=6,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
                return False
            return True

        await wait_until(caught_up, within=within, interval=0.2, what="the read model")
        db = Database.from_settings(self.query_settings)
        try:
            await assert_read_model_equals_store(db, truth)
        finally:
            await db.close()
        return truth.head


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    missing = [name for name in _NEEDED if not os.environ.get(name)]
    if missing:
        pytest.skip(f'{", ".join(missing)} not set (eval "$(scripts/infra.sh env)")')
    run = uuid.uuid4().hex[:10]
    base = {name: os.environ[name] for name in _PASS_THROUGH if name in os.environ}
    base |= {
        **TEST_ENV,
        "BCRYPT_COST": "4",
        # The load logs the same users in again and again from one address, far
        # beyond what the abuse limits let one person do (tests/e2e/test_abuse.py).
        "LOGIN_MAX_SUCCESSES_PER_EMAIL": "1000000",
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
        "REGISTER_MAX_PER_ADDRESS": "1000000",
    }
    ports = {name: free_port() for name in ("store", "command", "query", "gateway")}
    async with fresh_topic(os.environ["KAFKA_BROKER"]) as topic:
        store_env = base | {
            "DATA_DIR": str(tmp_path / "store"),
            "STORE_GRPC_LISTEN": f"127.0.0.1:{ports['store']}",
            "EVENT_STORE_BACKEND": "clickhouse",
            "CLICKHOUSE_DB": f"faults_{run}",
            "KAFKA_TOPIC": topic,
            "STORE_RELAY_SAVE_INTERVAL_MS": "200",
        }
        command_env = base | {
            "COMMAND_GRPC_LISTEN": f"127.0.0.1:{ports['command']}",
            "STORE_GRPC_TARGET": f"127.0.0.1:{ports['store']}",
            "COMMAND_STORE_TIMEOUT_SECONDS": "4",
            "COMMAND_TIMEOUT_SECONDS": str(COMMAND_BOUND),
        }
        query_env = base | {
            "DATA_DIR": str(tmp_path / "query"),
            "QUERY_GRPC_LISTEN": f"127.0.0.1:{ports['query']}",
            "QUERY_DB_BACKEND": "postgres",
            "POSTGRES_QUERY_SCHEMA": f"faults_{run}",
            "QUERY_EVENT_SOURCE": "kafka",
            # The topic's personal fields open with the store's key store (one per deployment).
            "PII_KEYS_FILE": str(tmp_path / "store" / "pii-keys.sqlite3"),
            "KAFKA_TOPIC": topic,
            "KAFKA_GROUP": f"faults-{run}",
            "QUERY_KAFKA_GAP_TIMEOUT_MS": "1000",
            "QUERY_PROJECTOR_BATCH_MAX": "20",  # many commits: a kill lands between some
            "STORE_GRPC_TARGET": f"127.0.0.1:{ports['store']}",
            "COMMAND_GRPC_TARGET": f"127.0.0.1:{ports['command']}",
        }
        gateway_env = base | {
            "GATEWAY_PORTS": str(ports["gateway"]),
            "STORE_GRPC_TARGET": f"127.0.0.1:{ports['store']}",
            "COMMAND_GRPC_TARGET": f"127.0.0.1:{ports['command']}",
            "QUERY_GRPC_TARGET": f"127.0.0.1:{ports['query']}",
        }
        stack = Stack(
            store=Service("store_svc", store_env, ports["store"], tmp_path / "store.log"),
            command=Service("command_svc", command_env, ports["command"], tmp_path / "command.log"),
            query=Service("query_svc", query_env, ports["query"], tmp_path / "query.log"),
            gateway=Service(
                "gateway", gateway_env, ports["gateway"], tmp_path / "gateway.log", http=True
            ),
            store_settings=StoreSettings.from_env(store_env),
            query_settings=QuerySettings.from_env(query_env),
            channels=[],
        )
        try:
            await stack.store.start()
            await asyncio.gather(stack.command.start(), stack.query.start())
            await stack.gateway.start()
            yield stack
        finally:
            for channel in stack.channels:
                await channel.close(None)
            for service in (stack.gateway, stack.query, stack.command, stack.store):
                service.stop()
            for service in (stack.store, stack.command, stack.query, stack.gateway):
                print(f"---- {service.module} log (tail) ----\n{service.tail()}")
            await drop_clickhouse_database(stack.store_settings)
            await drop_schema(stack.query_settings)
