"""LeaderChannel: calls go to the address that serves, past a standby and a silent peer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service_kit.leader_channel import LeaderChannel, leader_channel, split_targets, unreached
from service_kit.server import RunningServer, start_server
from service_kit.settings import SettingsError, env_targets
from store_svc.standby import StandbyServer

pytestmark = pytest.mark.unit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def serving() -> AsyncIterator[RunningServer]:
    server = await start_server("127.0.0.1:0", [])
    yield server
    await server.stop(0)


@pytest.fixture
async def standby() -> AsyncIterator[str]:
    address = f"127.0.0.1:{_free_port()}"
    server = StandbyServer(address)
    server.waiting_because("the lease is held by the leader")
    await server.start()
    yield address
    await server.stop()


def test_targets_are_split_and_checked() -> None:
    assert split_targets(" a:1, b:2 ,") == ("a:1", "b:2")
    assert env_targets({"T": "a:1, b:2"}, "T", "x:9") == "a:1,b:2"
    assert env_targets({}, "T", "x:9") == "x:9"
    for bad in ("a:1,nohostport", ",", "a:x"):
        with pytest.raises(SettingsError, match="T="):
            env_targets({"T": bad}, "T", "x:9")


async def test_one_address_is_a_plain_channel() -> None:
    channel = leader_channel("127.0.0.1:1")
    try:
        assert not isinstance(channel, LeaderChannel)
    finally:
        await channel.close(None)


async def test_a_standby_answers_unavailable_and_calls_move_to_the_leader(
    serving: RunningServer, standby: str
) -> None:
    async with grpc.aio.insecure_channel(standby) as direct:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(direct).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "standby store: not the leader (the lease is held" in (refused.value.details() or "")

    channel = LeaderChannel([standby, f"127.0.0.1:{serving.port}"])
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert channel.current == 1  # and the next call goes there first
    finally:
        await channel.close(None)


async def test_a_silent_peer_costs_half_the_deadline_then_calls_move_on(
    serving: RunningServer,
) -> None:
    # A listening socket that never speaks HTTP/2: a paused process, as clients see it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        channel = LeaderChannel(
            [f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{serving.port}"]
        )
        try:
            started = time.monotonic()
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=4
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert time.monotonic() - started < 3.5
            assert channel.current == 1
        finally:
            await channel.close(None)


async def test_a_silent_peer_is_not_tried_again_while_the_standby_answers(standby: str) -> None:
    # The leader paused, the standby not yet leading: calls stay on the standby (it
    # answers, "not the leader") rather than going back to wait on the silent leader.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        channel = LeaderChannel([f"127.0.0.1:{silent.getsockname()[1]}", standby])
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as first:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=4)
            assert first.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not the leader" in (first.value.details() or "")
            assert channel.current == 1
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as second:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=4)
            assert second.value.code() == grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 1.5, "went back to the silent peer"
            assert channel.current == 1
        finally:
            await channel.close(None)


async def test_errors_of_the_server_are_not_retried_elsewhere(serving: RunningServer) -> None:
    channel = LeaderChannel([f"127.0.0.1:{serving.port}", "127.0.0.1:1"])
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5
            )
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert channel.current == 0
    finally:
        await channel.close(None)


async def test_a_stream_ending_unavailable_moves_the_next_one(
    serving: RunningServer, standby: str
) -> None:
    channel = LeaderChannel([standby, f"127.0.0.1:{serving.port}"])
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for _ in stub.Watch(health_pb2.HealthCheckRequest(), timeout=5):
                pass
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        for _ in range(50):  # the move happens in a callback, just after the call ends
            if channel.current == 1:
                break
            await asyncio.sleep(0.01)
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    finally:
        await channel.close(None)


def test_a_reset_by_the_peer_counts_as_unreached() -> None:
    assert unreached(grpc.StatusCode.UNAVAILABLE, "")
    assert unreached(grpc.StatusCode.INTERNAL, "INTERNAL: Internal error from Core")
    assert not unreached(grpc.StatusCode.INTERNAL, "internal error; see the service log")
    assert not unreached(grpc.StatusCode.ABORTED, "")
