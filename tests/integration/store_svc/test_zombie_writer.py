"""Two real store_svc processes on one ClickHouse database: the writer is paused
(SIGSTOP) at random moments under load until its lease lapses, a successor takes over
and serves, the paused one is resumed (SIGCONT), later killed (SIGKILL). Clients retry
on the other process. Every acknowledged event must stay readable, exactly once, where
it was acknowledged; no position and no e-mail claim is ever held by two events.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from pathlib import Path

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from service_kit.leader_channel import unreached
from store_svc.settings import StoreSettings
from tests.auth_support import SERVICE, channel_as
from tests.integration.store_svc.conftest import drop_clickhouse_database, store_env
from tests.integration.store_svc.process import StoreProcess, free_port
from tests.integration.store_svc.support import StoreStub, append_request, created
from tests.integration.store_svc.test_crash_and_single_writer import (
    read_everything,
    start_when_lock_free,
)

pytestmark = pytest.mark.integration

LEASE_TTL_MS = 3000
ROUNDS = 3
APPENDERS = 12
# Seeded: a failure can be replayed with the same pause moments.
SEED = 20261203


class Cluster:
    """Two store processes; `leader` is the index of the one expected to write."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.procs = [StoreProcess(env, free_port(), tmp_path / f"store-{i}.log") for i in range(2)]
        self.leader = 0
        self.stop = asyncio.Event()
        # event id -> (user id, position) as acknowledged.
        self.acked: dict[str, tuple[str, int]] = {}
        self.acks_by = [0, 0]  # acknowledgements per process

    def targets(self) -> list[str]:
        return [f"127.0.0.1:{proc.port}" for proc in self.procs]


async def appender(cluster: Cluster, worker: int) -> None:
    """Registers users; on UNAVAILABLE or a dead target, retries the same request elsewhere."""
    channels = [channel_as(target, SERVICE) for target in cluster.targets()]
    stubs: list[StoreStub] = [pb_grpc.EventStoreServiceStub(channel) for channel in channels]
    try:
        i = 0
        while not cluster.stop.is_set():
            user_id = str(uuid.uuid4())
            request = append_request(
                user_id, [created(user_id, f"w{worker}-{i}@example.com")], exact=0
            )
            i += 1
            target = cluster.leader
            for _attempt in range(200):
                try:
                    reply = await stubs[target].Append(request, timeout=2)
                except grpc.aio.AioRpcError as exc:
                    # Also a call cut by a standby's refusing server as it makes
                    # way for the real one (store_svc.standby): never answered.
                    if unreached(exc.code(), exc.details() or "") or exc.code() in (
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.CANCELLED,
                    ):
                        target = 1 - target  # the other process may be the leader now
                        await asyncio.sleep(0.05)
                        continue
                    raise
                cluster.acked[request.events[0].event_id] = (user_id, reply.positions[0])
                cluster.acks_by[target] += 1
                break
    finally:
        for channel in channels:
            await channel.close(None)


def fast_lease_env(tmp_path: Path) -> dict[str, str]:
    return {
        **store_env("clickhouse", tmp_path),
        "STORE_LEASE_TTL_MS": str(LEASE_TTL_MS),
        "STORE_LEASE_HEARTBEAT_MS": "500",
    }


async def check_log(env: dict[str, str], tmp_path: Path, acked: dict[str, tuple[str, int]]) -> None:
    """Read back by a fresh store: every acknowledged event where it was acknowledged,
    gapless positions, no event, (stream, version) or e-mail twice."""
    final = StoreProcess(env, free_port(), tmp_path / "final.log")
    try:
        await start_when_lock_free(final)
        async with channel_as(f"127.0.0.1:{final.port}", SERVICE) as channel:
            events = await read_everything(pb_grpc.EventStoreServiceStub(channel))
        positions = [event.position for event in events]
        assert positions == list(range(1, len(events) + 1)), "positions not gapless/unique"
        by_id = {event.event_id: event for event in events}
        assert len(by_id) == len(events), "an event stored twice"
        streams = [(event.aggregate_id, event.version) for event in events]
        assert len(set(streams)) == len(streams), "a (stream, version) holds two events"
        emails = [event.payload["email"] for event in events]
        assert len(set(emails)) == len(emails), "an e-mail address claimed twice"
        for event_id, (user_id, position) in acked.items():
            event = by_id.get(event_id)
            assert event is not None, f"acknowledged event {event_id} lost"
            assert (event.aggregate_id, event.position) == (user_id, position)
    finally:
        with contextlib.suppress(Exception):
            final.kill()
        await drop_clickhouse_database(StoreSettings.from_env(env))


async def test_a_standby_takes_over_a_paused_leader_which_then_steps_down(
    tmp_path: Path,
) -> None:
    env = fast_lease_env(tmp_path)
    cluster = Cluster(env, tmp_path)
    leader, standby = cluster.procs
    standby.env["STORE_STANDBY"] = "1"
    leader.start()
    await leader.wait_serving()
    standby.start()  # waits for the lease; serves nothing meanwhile
    workers = [asyncio.create_task(appender(cluster, w)) for w in range(4)]
    try:
        await asyncio.sleep(1.0)
        assert cluster.acks_by[0] > 0 and cluster.acks_by[1] == 0
        leader.pause()
        paused_at = time.monotonic()
        limit = LEASE_TTL_MS / 1000 + 5
        # Clients see no more than retries: acknowledgements go on, from the standby.
        while cluster.acks_by[1] == 0:
            assert time.monotonic() - paused_at < limit, "no ack by the standby in TTL + 5 s"
            await asyncio.sleep(0.05)
        acked_by_leader = cluster.acks_by[0]
        cluster.leader = 1
        leader.resume()  # the old leader must step down without writing
        await asyncio.sleep(1.5)
        async with channel_as(cluster.targets()[0], SERVICE) as channel:
            user_id = str(uuid.uuid4())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.EventStoreServiceStub(channel).Append(
                    append_request(user_id, [created(user_id, "zombie@example.com")], exact=0),
                    timeout=5,
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        await asyncio.sleep(0.5)
        assert cluster.acks_by[0] == acked_by_leader, "the paused leader acknowledged after"
    finally:
        cluster.stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for proc in cluster.procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.resume()
                proc.kill()
    await check_log(env, tmp_path, cluster.acked)


async def test_paused_and_killed_writers_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    env = fast_lease_env(tmp_path)
    rng = random.Random(SEED)
    cluster = Cluster(env, tmp_path)
    cluster.procs[0].start()
    await cluster.procs[0].wait_serving()
    workers = [asyncio.create_task(appender(cluster, w)) for w in range(APPENDERS)]
    try:
        for _round in range(ROUNDS):
            old, new = cluster.procs[cluster.leader], cluster.procs[1 - cluster.leader]
            await asyncio.sleep(rng.uniform(0.3, 1.5))  # a random moment under load
            old.pause()
            await start_when_lock_free(new)  # refused while the paused lease is live
            cluster.leader = 1 - cluster.leader
            await asyncio.sleep(rng.uniform(0.5, 1.5))
            old.resume()  # the zombie: must step down, acknowledge nothing it cannot prove
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            old.kill()
        await asyncio.sleep(0.5)
    finally:
        cluster.stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for proc in cluster.procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.resume()
                proc.kill()
    assert len(cluster.acked) > 50, "the load never got going"

    await check_log(env, tmp_path, cluster.acked)
