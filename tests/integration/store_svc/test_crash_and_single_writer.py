"""A real store process: SIGKILL mid-load loses nothing acknowledged; one writer only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from store_svc.settings import StoreSettings
from tests.auth_support import SERVICE, TEST_ENV, channel_as
from tests.integration.store_svc.conftest import BACKENDS, drop_clickhouse_database, store_env
from tests.integration.store_svc.process import StoreProcess, free_port
from tests.integration.store_svc.support import StoreStub, register

pytestmark = pytest.mark.integration


async def read_everything(stub: StoreStub) -> list[pb.Event]:
    events: list[pb.Event] = []
    after = 0
    while True:
        page = await stub.ListEvents(pb.ListEventsRequest(after_position=after, limit=1000))
        events.extend(page.events)
        if page.next_after_position == 0:
            return events
        after = page.next_after_position


async def start_when_lock_free(proc: StoreProcess, within: float = 60.0) -> None:
    """Restarts until the previous writer's lock or lease has lapsed."""
    deadline = time.monotonic() + within
    while True:
        proc.start()
        try:
            await proc.wait_serving()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigkill_during_appends_loses_nothing_acknowledged(
    backend: str, tmp_path: Path
) -> None:
    env = store_env(backend, tmp_path)
    proc = StoreProcess(env, free_port(), tmp_path / "store.log")
    proc.start()
    await proc.wait_serving()
    acked: dict[str, int] = {}  # user id -> position acknowledged
    try:
        async with channel_as(f"127.0.0.1:{proc.port}", SERVICE) as channel:
            stub = pb_grpc.EventStoreServiceStub(channel)

            async def appender(worker: int) -> None:
                for i in range(10_000):
                    try:
                        user_id = await register(stub, f"w{worker}-{i}@example.com")
                    except grpc.aio.AioRpcError:
                        return  # the store died under us
                    acked[user_id] = i

            tasks = [asyncio.create_task(appender(w)) for w in range(16)]
            await asyncio.sleep(1.5)
            proc.kill()
            await asyncio.gather(*tasks)
        assert len(acked) > 20, "the load never got going"

        await start_when_lock_free(proc)
        async with channel_as(f"127.0.0.1:{proc.port}", SERVICE) as channel:
            stub = pb_grpc.EventStoreServiceStub(channel)
            events = await read_everything(stub)
            positions = [e.position for e in events]
            assert positions == list(range(1, len(events) + 1)), "positions must stay gapless"
            ids = [e.event_id for e in events]
            assert len(set(ids)) == len(ids)
            stored_users = {e.aggregate_id for e in events}
            assert set(acked) <= stored_users, "an acknowledged append was lost"
            # The store keeps taking writes after recovery, continuing the sequence.
            await register(stub, "after-crash@example.com")
            tail = await stub.ListEvents(pb.ListEventsRequest(after_position=len(events), limit=10))
            assert [e.position for e in tail.events] == [len(events) + 1]
    finally:
        with contextlib.suppress(Exception):
            proc.terminate()
        if backend == "clickhouse":
            await drop_clickhouse_database(StoreSettings.from_env(env))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_second_writer_refuses_to_start(backend: str, tmp_path: Path) -> None:
    env = store_env(backend, tmp_path)
    first = StoreProcess(env, free_port(), tmp_path / "first.log")
    first.start()
    try:
        await first.wait_serving()
        second = StoreProcess(env, free_port(), tmp_path / "second.log")
        second.start()
        assert second.proc is not None
        code = await asyncio.to_thread(second.proc.wait, 60)
        assert code != 0
        assert "writer" in second.tail().lower()
    finally:
        first.terminate()
        if backend == "clickhouse":
            await drop_clickhouse_database(StoreSettings.from_env(env))


def test_bad_setting_stops_the_store_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "store_svc"],
        env={
            **os.environ,
            "DATA_DIR": str(tmp_path),
            **TEST_ENV,
            "STORE_BATCH_MAX_EVENTS": "lots",
        },
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert b"STORE_BATCH_MAX_EVENTS" in result.stderr


def test_store_refuses_to_start_without_trusted_keys(tmp_path: Path) -> None:
    """No KEYS_DIR/trusted.json: the store names the variable and the command that fixes it."""
    result = subprocess.run(
        [sys.executable, "-m", "store_svc"],
        env={**os.environ, "DATA_DIR": str(tmp_path), "KEYS_DIR": str(tmp_path / "none")},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert b"KEYS_DIR" in result.stderr
    assert b"python -m service_kit.keys init" in result.stderr
