"""Fixtures of the Kafka tests: the broker, a fresh topic, and a store that relays to it.

Skipped when ``KAFKA_BROKER`` is unset; ClickHouse cases also need
``CLICKHOUSE_HOST`` and PostgreSQL cases ``POSTGRES_QUERY_HOST`` (all three
come from ``eval "$(scripts/infra.sh env)"``, which CI runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from store_svc import app as store_app
from store_svc.settings import StoreSettings
from tests.integration.kafka.support import fresh_topic, kafka_broker
from tests.integration.store_svc.conftest import drop_clickhouse_database, store_env

StoreFactory = Callable[..., Awaitable[store_app.StoreService]]


@pytest.fixture
def broker() -> str:
    return kafka_broker()


@dataclass(frozen=True, slots=True)
class Kafka:
    """The broker and this test's own topic."""

    broker: str
    topic: str


@pytest.fixture
async def kafka(broker: str) -> AsyncIterator[Kafka]:
    async with fresh_topic(broker) as name:
        yield Kafka(broker, name)


@pytest.fixture(scope="session")
def password_hash() -> str:
    return bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt(4)).decode()


def relay_env(backend: str, data_dir: Path, kafka: Kafka) -> dict[str, str]:
    """A store on a fresh SQLite folder or ClickHouse database, relaying to the topic."""
    return {
        **store_env(backend, data_dir),
        "KAFKA_BROKER": kafka.broker,
        "KAFKA_TOPIC": kafka.topic,
        "STORE_RELAY_SAVE_INTERVAL_MS": "100",
    }


@pytest.fixture
async def start_store() -> AsyncIterator[StoreFactory]:
    """Starts stores from an environment; stops them (and drops ClickHouse databases) after."""
    running: list[store_app.StoreService] = []
    databases: list[StoreSettings] = []

    async def start(env: dict[str, str]) -> store_app.StoreService:
        settings = StoreSettings.from_env(env)
        if settings.backend == "clickhouse" and settings not in databases:
            databases.append(settings)
        service = await store_app.start(settings)
        running.append(service)
        return service

    yield start
    for service in running:
        await service.stop(grace=1)
    for settings in databases:
        await drop_clickhouse_database(settings)
