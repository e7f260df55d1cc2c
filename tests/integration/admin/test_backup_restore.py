"""``cqrs-admin backup`` while writes run, ``restore`` into a fresh folder or
database, then start the system there: every acknowledged write up to the
backup's position is in the event store and, once the projector caught up, in
the read model; a restore into a non-empty target is refused; ``status``
describes the running system. On the embedded stack (SQLite files) and the
production stack (ClickHouse events, PostgreSQL read model, Kafka relay and
projector), each on its own databases, schemas and topics."""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.query.v1 import query_pb2 as qpb
from sqlalchemy import select

from cqrs_admin import clickhouse
from query_svc.db import LIVE
from query_svc.db import MIGRATIONS as READ_MODEL_MIGRATIONS
from query_svc.settings import QuerySettings
from store_svc.engine import ClickHouseConfig, RecordedEvent
from tests.integration.admin.deployment import PASSWORD, Writes, cqrs_admin, running
from tests.integration.kafka.support import fresh_topic, kafka_broker
from tests.integration.query_svc.conftest import drop_schema

pytestmark = pytest.mark.integration

_PG = (
    "POSTGRES_QUERY_HOST",
    "POSTGRES_QUERY_PORT",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_QUERY_DB",
)


@dataclass(frozen=True, slots=True)
class Pair:
    """Where the system runs and is backed up (``source``), and the empty target."""

    stack: str
    source: dict[str, str]
    target: dict[str, str]


# The writers register from one address, far more than a client may in an hour.
_UNLIMITED = {"REGISTER_MAX_PER_ADDRESS": "1000000"}


def _embedded(tmp_path: Path) -> Pair:
    def env(name: str) -> dict[str, str]:
        return {"DATA_DIR": str(tmp_path / name), "EVENT_STORE_BACKEND": "sqlite", **_UNLIMITED}

    return Pair("embedded", env("source"), env("restored"))


@pytest.fixture(params=["embedded", "production"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    if request.param == "embedded":
        yield _embedded(tmp_path)
        return
    broker = kafka_broker()
    if not os.environ.get("CLICKHOUSE_HOST") or not os.environ.get("POSTGRES_QUERY_HOST"):
        pytest.skip('CLICKHOUSE_HOST / POSTGRES_QUERY_HOST unset (eval "$(scripts/infra.sh env)")')
    run = uuid.uuid4().hex[:10]
    shared = {
        "EVENT_STORE_BACKEND": "clickhouse",
        "QUERY_DB_BACKEND": "postgres",
        "QUERY_EVENT_SOURCE": "kafka",
        "KAFKA_BROKER": broker,
        "DATA_DIR": str(tmp_path / "unused"),
        **_UNLIMITED,
        **{k: os.environ[k] for k in ("CLICKHOUSE_HOST", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD")},
        **{k: os.environ.get(k, "") for k in _PG},
    }
    async with fresh_topic(broker) as topic_a, fresh_topic(broker) as topic_b:

        def env(name: str, topic: str) -> dict[str, str]:
            return {
                **shared,
                "CLICKHOUSE_DB": f"admin_{name}_{run}",
                "POSTGRES_QUERY_SCHEMA": f"admin_{name}_{run}",
                "KAFKA_TOPIC": topic,
                "KAFKA_GROUP": f"admin-{name}-{run}",
            }

        pair = Pair("production", env("source", topic_a), env("restored", topic_b))
        try:
            yield pair
        finally:
            for side in (pair.source, pair.target):
                await drop_schema(QuerySettings.from_env(side))
                config = ClickHouseConfig.from_env(side)
                async with clickhouse.session(config) as ch:
                    await ch("drop", f"DROP DATABASE IF EXISTS {config.database}", None)


def _manifest(path: Path) -> dict[str, object]:
    with tarfile.open(path, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        body: dict[str, object] = json.loads(member.read())
        return body


async def _status(env: dict[str, str]) -> dict[str, object]:
    result = await cqrs_admin(env, "status", "--json")
    assert result.code == 0, result.err
    body: dict[str, object] = json.loads(result.out)
    return body


async def test_backup_while_writing_then_restore_and_start(pair: Pair, tmp_path: Path) -> None:
    archive = tmp_path / "backup.tar.gz"
    async with running(pair.source) as system:
        writes = Writes(system.commands)
        try:
            writes.start()
            await writes.until(10)

            status = await _status(pair.source)  # against the running system
            store_status = status["event_store"]
            assert isinstance(store_status, dict)
            assert store_status["schema_version"] == store_status["code_schema_version"]
            assert store_status["schema_version"] >= 1
            assert store_status["position"] >= max(p for _, _, p in writes.acked[:10])
            writers = status["writers"]
            assert isinstance(writers, list) and writers[0]["state"] == "leader", writers
            if pair.stack == "embedded":
                assert f"pid {os.getpid()}" in writers[0]["who"]
            else:
                assert f":{os.getpid()}:" in writers[0]["who"]
                assert status["relay_topic"] == pair.source["KAFKA_TOPIC"]
            read_status = status["read_model"]
            assert isinstance(read_status, dict)
            assert read_status["schema_version"] == READ_MODEL_MIGRATIONS[-1].version
            assert status["projector_lag"] == store_status["position"] - read_status["position"]

            acked_before = len(writes.acked)
            result = await cqrs_admin(pair.source, "backup", "--out", str(archive))
            assert result.code == 0, result.err
            await writes.until(len(writes.acked) + 10)  # still writing after the backup
            await writes.stop()

            refused = await cqrs_admin(pair.source, "restore", "--from", str(archive))
            assert refused.code == 1
            assert "not empty" in refused.err or "already holds events" in refused.err, refused.err
        finally:
            writes.cancel()

    manifest = _manifest(archive)
    position = manifest["position"]
    assert isinstance(position, int) and manifest["stack"] == pair.stack
    assert f"up to position {position}" in result.out
    # Every write acknowledged before the backup began is in it; some came after it.
    assert all(p <= position for _, _, p in writes.acked[:acked_before])
    assert any(p > position for _, _, p in writes.acked)
    kept = {user_id: email for user_id, email, p in writes.acked if p <= position}

    restored = await cqrs_admin(pair.target, "restore", "--from", str(archive))
    assert restored.code == 0, restored.err
    async with running(pair.target) as system:
        store = system.store.store
        assert store.head_position() == position  # gapless 1..position, nothing more
        events: list[RecordedEvent] = []
        while len(events) < position:
            events += await store.read_all(after_position=len(events), limit=1000)
        assert [e.position for e in events] == list(range(1, position + 1))
        assert kept.keys() <= {e.aggregate_id for e in events}

        deadline = time.monotonic() + 60
        while system.query.projector.applied_position < position:
            assert time.monotonic() < deadline, "the read model did not catch up"
            await asyncio.sleep(0.1)
        async with system.query.database.read() as conn:
            ids = set((await conn.execute(select(LIVE.users.c.id))).scalars())
        assert kept.keys() <= ids
        # The restored system works: a restored user logs in, a new user gets the next position.
        user_id, email = next(iter(kept.items()))
        login = await system.queries.Login(
            qpb.LoginRequest(email=email, password=PASSWORD), timeout=20
        )
        assert login.token
        taken = await system.commands.Register(
            cmd.RegisterRequest(
                email=f"after-{uuid.uuid4().hex[:6]}@example.com", password=PASSWORD
            ),
            timeout=20,
        )
        # After the login's own event: positions go on from the restored head, gapless.
        assert taken.position == store.head_position() > position
        status = await _status(pair.target)
        latest = READ_MODEL_MIGRATIONS[-1].version
        assert status["read_model"]["schema_version"] == latest  # type: ignore[index]
    assert user_id in ids
