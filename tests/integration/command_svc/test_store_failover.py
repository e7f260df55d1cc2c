"""command_svc follows the event store's leader (``STORE_GRPC_TARGET=leader,standby``).

Real processes on ClickHouse: a leader store_svc and a standby (``STORE_STANDBY=1``),
a command_svc given both addresses, registrations going on throughout. The leader is
paused (SIGSTOP): registrations succeed again, through the standby, within the lease
TTL + 5 s. The leader is resumed (SIGCONT): it steps down (UNAVAILABLE, naming the
lost lease) and writes nothing: no position or (stream, version) holds two events
and every acknowledged registration is stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from cqrs.eventstore.v1 import event_store_pb2 as store_pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as store_grpc

from command_svc import app as command_app
from store_svc.settings import StoreSettings
from tests.auth_support import SERVICE, channel_as
from tests.integration.command_svc.conftest import command_settings
from tests.integration.store_svc.conftest import drop_clickhouse_database, store_env
from tests.integration.store_svc.process import StoreProcess, free_port
from tests.integration.store_svc.support import append_request, created
from tests.integration.store_svc.test_crash_and_single_writer import read_everything

pytestmark = pytest.mark.integration

LEASE_TTL_MS = 3000
WORKERS = 3


class Registrations:
    """Registers users through command_svc until stopped; counts what the caller saw."""

    def __init__(self, stub: command_grpc.CommandServiceAsyncStub) -> None:
        self.stub = stub
        self.stop = asyncio.Event()
        self.acked: dict[str, float] = {}  # user id -> when acknowledged (monotonic)
        self.refused: list[str] = []  # what callers were told instead

    async def run(self, worker: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            request = pb.RegisterRequest(
                email=f"w{worker}-{i}-{uuid.uuid4().hex[:6]}@example.com", password="password-123"
            )
            try:
                reply = await self.stub.Register(request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # a retry, nothing else
                self.refused.append(exc.details() or "")
                await asyncio.sleep(0.1)
                continue
            self.acked[reply.id] = time.monotonic()

    def acked_since(self, moment: float) -> int:
        return sum(1 for when in self.acked.values() if when > moment)


async def test_commands_follow_the_store_leader_through_a_failover(tmp_path: Path) -> None:
    env = {
        **store_env("clickhouse", tmp_path),
        "STORE_LEASE_TTL_MS": str(LEASE_TTL_MS),
        "STORE_LEASE_HEARTBEAT_MS": "500",
    }
    leader = StoreProcess(env, free_port(), tmp_path / "leader.log")
    standby = StoreProcess({**env, "STORE_STANDBY": "1"}, free_port(), tmp_path / "standby.log")
    targets = [f"127.0.0.1:{leader.port}", f"127.0.0.1:{standby.port}"]
    leader.start()
    await leader.wait_serving()
    standby.start()
    command = await command_app.start(command_settings(0, store_target=",".join(targets)))
    workers: list[asyncio.Task[None]] = []
    try:
        # A waiting standby answers UNAVAILABLE, saying what it is: clients move on.
        async with channel_as(targets[1], SERVICE) as channel:
            store = store_grpc.EventStoreServiceStub(channel)
            details = ""
            started = time.monotonic()
            while time.monotonic() - started < 60:  # the process may take a while to start
                try:
                    await store.CountEvents(store_pb.CountEventsRequest(), timeout=2)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and "standby" in (
                        exc.details() or ""
                    ):
                        details = exc.details() or ""
                        break
                await asyncio.sleep(0.1)
            assert details.startswith("standby store: not the leader"), details

        async with grpc.aio.insecure_channel(f"127.0.0.1:{command.server.port}") as channel:
            registrations = Registrations(command_grpc.CommandServiceStub(channel))
            workers = [asyncio.create_task(registrations.run(w)) for w in range(WORKERS)]
            await asyncio.sleep(1.5)
            assert registrations.acked, f"no registration before the pause: {registrations.refused}"

            leader.pause()
            paused_at = time.monotonic()
            # The standby serves within the lease TTL + 5 s; a caller also spends up to
            # half of command_svc's store timeout (10 s) finding the leader silent
            # before its call moves on (service_kit/leader_channel.py).
            limit = LEASE_TTL_MS / 1000 + 5 + 10 / 2
            while registrations.acked_since(paused_at + 0.5) == 0:
                assert time.monotonic() - paused_at < limit, (
                    "no command succeeded within the lease TTL + 5 s + the caller's "
                    f"detection of a silent leader: {registrations.refused[-3:]}"
                )
                await asyncio.sleep(0.05)

            leader.resume()  # it must step down, and write nothing more
            resumed_at = time.monotonic()
            await asyncio.sleep(2.0)
            async with channel_as(targets[0], SERVICE) as old_channel:
                user_id = str(uuid.uuid4())
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await store_grpc.EventStoreServiceStub(old_channel).Append(
                        append_request(user_id, [created(user_id, "zombie@example.com")], exact=0),
                        timeout=5,
                    )
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "steps down" in leader.log.read_text(), "the old leader did not step down"
            # Commands go on, at the new leader, with the old one back and refusing.
            before = registrations.acked_since(resumed_at + 2.0)
            await asyncio.sleep(1.5)
            assert registrations.acked_since(resumed_at + 2.0) > before
            registrations.stop.set()
            await asyncio.gather(*workers)

        async with channel_as(targets[1], SERVICE) as channel:
            events = await read_everything(store_grpc.EventStoreServiceStub(channel))
    finally:
        for task in workers:
            task.cancel()
        await command.stop(grace=1)
        for proc in (leader, standby):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.resume()
                proc.kill()
        with contextlib.suppress(Exception):
            await drop_clickhouse_database(StoreSettings.from_env(env))

    positions = [event.position for event in events]
    assert len(set(positions)) == len(positions), "a position holds two events"
    versions = [(event.aggregate_id, event.version) for event in events]
    assert len(set(versions)) == len(versions), "a (stream, version) holds two events"
    created_by = [e.aggregate_id for e in events if e.event_type == "user.created"]
    for user_id in registrations.acked:
        assert created_by.count(user_id) == 1, f"acknowledged user {user_id} not stored once"
    assert "zombie@example.com" not in {e.payload["email"] for e in events if "email" in e.payload}
