"""service_kit.readiness: checks, statuses, gRPC health that follows them, peer checks.

Served by real grpc.aio servers on 127.0.0.1:0 and read by real clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from cqrs.health.v1 import readiness_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from service_kit import readiness
from service_kit.dependency_errors import Dependency
from service_kit.readiness import Check, Readiness, Result, Status
from service_kit.server import RunningServer, start_server

pytestmark = pytest.mark.unit

SERVICE = "cqrs.test.v1.TestService"
DB = Dependency("read model database", "PostgreSQL at db:5432")


class Results:
    """What each check returns (or raises) next."""

    def __init__(self) -> None:
        self.db: Result | BaseException = readiness.ok()
        self.lag: Result | BaseException = readiness.ok(behind=0)

    async def database(self) -> Result:
        return self._give(self.db)

    async def relay(self) -> Result:
        return self._give(self.lag)

    @staticmethod
    def _give(value: Result | BaseException) -> Result:
        if isinstance(value, BaseException):
            raise value
        return value


async def hang() -> Result:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Readiness, Results, RunningServer]]:
    results = Results()
    r = Readiness(
        SERVICE,
        [
            Check("read_model_db", results.database, required=True),
            Check("kafka_relay", results.relay, required=False),
        ],
        interval=3600,
        details=lambda: {"head": 42},
    )
    server = await start_server("127.0.0.1:0", [r.registration()])
    await r.start(server.health)
    try:
        yield r, results, server
    finally:
        await r.stop()
        await server.stop(grace=0)


async def health_of(server: RunningServer, name: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
        return int(reply.status)


async def report_of(server: RunningServer) -> pb.GetReadinessResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        return await readiness.fetch(channel, deadline=5)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_all_ok(served: tuple[Readiness, Results, RunningServer]) -> None:
    _, _, server = served
    report = await report_of(server)
    assert (report.service, report.status, report.ready) == (SERVICE, pb.CHECK_STATUS_OK, True)
    assert [c.name for c in report.checks] == ["read_model_db", "kafka_relay"]
    assert dict(report.details) == {"head": 42}
    assert await health_of(server, SERVICE) == SERVING


async def test_required_down_is_not_serving_but_the_server_stays_alive(
    served: tuple[Readiness, Results, RunningServer],
) -> None:
    r, results, server = served
    results.db = DB.unavailable("it refused the connection")
    await r.run_once()
    report = await report_of(server)
    assert (report.status, report.ready) == (pb.CHECK_STATUS_DOWN, False)
    check = report.checks[0]
    assert check.reason == (
        "read model database (PostgreSQL at db:5432) is unavailable: "
        "it refused the connection; retry later"
    )
    assert readiness.not_ready_reasons(report) == f"read_model_db: {check.reason}"
    assert await health_of(server, SERVICE) == NOT_SERVING
    assert await health_of(server, "") == SERVING  # liveness
    labels = {"service": SERVICE, "check": "read_model_db"}
    assert REGISTRY.get_sample_value("readiness_check_status", labels) == 2
    results.db = readiness.ok()
    await r.run_once()
    assert await health_of(server, SERVICE) == SERVING


async def test_a_non_required_check_down_only_degrades(
    served: tuple[Readiness, Results, RunningServer],
) -> None:
    r, results, server = served
    results.lag = ConnectionRefusedError(111, "refused")  # an outage, raised
    await r.run_once()
    assert (r.status, r.ready) == (Status.DEGRADED, True)
    relay = (await report_of(server)).checks[1]
    assert relay.status == pb.CHECK_STATUS_DOWN
    assert relay.reason.startswith("network is unavailable: it refused the connection")
    results.lag = readiness.degraded("relay behind by 7 events", behind=7)
    await r.run_once()
    assert r.status == Status.DEGRADED
    assert dict((await report_of(server)).checks[1].details) == {"behind": 7.0}
    assert await health_of(server, SERVICE) == SERVING


async def test_a_hung_check_is_down_within_its_timeout_and_a_bug_says_see_the_log() -> None:
    async def bug() -> Result:
        raise KeyError("oops")

    r = Readiness(
        SERVICE,
        [Check("hung", hang, timeout=0.2), Check("bug", bug), Check("fine", readiness_ok)],
        interval=3600,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    await r.run_once()
    assert loop.time() - started < 1.0
    hung, bugged = r.result("hung"), r.result("bug")
    assert hung is not None and hung.reason == "the check did not finish within 0.2s"
    assert (
        bugged is not None and bugged.reason == "the check failed (KeyError); see the service log"
    )
    assert r.status == Status.DOWN


async def readiness_ok() -> Result:
    return readiness.ok()


async def test_a_standby_is_alive_but_not_ready() -> None:
    r = Readiness(SERVICE, [Check("storage", readiness_ok)], role=lambda: "standby")
    await r.run_once()
    assert (r.status, r.ready, r.report().role) == (Status.OK, False, "standby")
    assert readiness.not_ready_reasons(r.report()) == "it is a standby"


async def test_peer_check_over_real_servers(
    served: tuple[Readiness, Results, RunningServer],
) -> None:
    r, results, server = served
    seen: list[pb.GetReadinessResponse] = []
    store = Dependency("event store", "store_svc at store:9090")
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as up,
        grpc.aio.insecure_channel("127.0.0.1:1") as nowhere,
    ):
        check = readiness.peer_check(
            "event_store", store, [nowhere, up], required=True, on_report=seen.append
        )
        assert (await check.run()).status == Status.OK
        assert seen[-1].details["head"] == 42
        results.db = DB.unavailable("it refused the connection")
        await r.run_once()
        result = await check.run()
        assert result.status == Status.DOWN
        assert result.reason.startswith(
            "event store (store_svc at store:9090) is not ready: "
            "it cannot be reached (UNAVAILABLE); read_model_db: read model database"
        )
