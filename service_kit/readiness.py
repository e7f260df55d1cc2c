"""Readiness, dependency by dependency: periodic checks, a report, and gRPC health.

Each service lists its :class:`Check` s (its database, the store it calls,
its projector, ...). :class:`Readiness` runs them all every ``interval``
seconds, each bounded by its own timeout (a check that does not finish in
time is DOWN: "did not answer within N s"), and keeps the latest results:

* ``cqrs.health.v1.ReadinessService/GetReadiness`` answers them from memory
  (public, like ``grpc.health.v1``; the gateway's ``/health`` reports it);
* the gauge ``readiness_check_status{service,check}`` (0 ok, 1 degraded,
  2 down) follows them on ``/metrics``;
* the standard ``grpc.health.v1`` status of the service's name follows
  them: NOT_SERVING while a *required* check is DOWN (or the service is in a
  role that does not serve, such as a standby store), SERVING otherwise.
  The server-wide status (service name ``""``) stays SERVING while the
  process runs: that is liveness, the named service is readiness.

Statuses: ``ok``; ``degraded`` (working, but behind or partly unavailable:
reads may be stale, a non-required dependency is down); ``down``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
from cqrs.health.v1 import readiness_pb2 as pb
from cqrs.health.v1 import readiness_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2
from prometheus_client import Gauge

from service_kit.dependency_errors import Dependency, DependencyUnavailable, classify
from service_kit.server import Registration
from service_kit.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CHECK_STATUS = Gauge(
    "readiness_check_status",
    "Latest result of each readiness check: 0 ok, 1 degraded, 2 down.",
    ["service", "check"],
)

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["ReadinessService"].full_name
"""Served beside every service; its access rule (public, like health) is in the contract."""


class Status(enum.StrEnum):
    """A check's (or a service's) status, as /health spells it."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def pb(self) -> pb.CheckStatus.ValueType:
        return _TO_PB[self]


_TO_PB: Final = {
    Status.OK: pb.CHECK_STATUS_OK,
    Status.DEGRADED: pb.CHECK_STATUS_DEGRADED,
    Status.DOWN: pb.CHECK_STATUS_DOWN,
}
_RANK: Final = {Status.OK: 0, Status.DEGRADED: 1, Status.DOWN: 2}


@dataclass(frozen=True, slots=True)
class Result:
    """What one run of a check found."""

    status: Status
    reason: str = ""
    details: Mapping[str, float] = field(default_factory=dict)


def ok(**details: float) -> Result:
    return Result(Status.OK, "", details)


def degraded(reason: str, **details: float) -> Result:
    return Result(Status.DEGRADED, reason, details)


def down(reason: str, **details: float) -> Result:
    return Result(Status.DOWN, reason, details)


@dataclass(frozen=True, slots=True)
class Check:
    """A named check; ``required``: the service is not ready while it is DOWN.

    ``run`` may return a :class:`Result` or raise: a
    :class:`~service_kit.dependency_errors.DependencyUnavailable` or any other
    outage is DOWN with its reason, anything else is DOWN as "check failed".
    """

    name: str
    run: Callable[[], Awaitable[Result]]
    required: bool = True
    timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class _Latest:
    result: Result
    at: float


class Readiness:
    """Runs a service's checks periodically (see the module docstring)."""

    def __init__(
        self,
        service_name: str,
        checks: Sequence[Check],
        *,
        interval: float = 1.0,
        role: Callable[[], str] | None = None,
        details: Callable[[], Mapping[str, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_name = service_name
        self.checks = tuple(checks)
        self._interval = interval
        self._role = role
        self._details = details
        self._clock = clock
        self._latest: dict[str, _Latest] = {}
        self._health: Any = None  # grpc_health's asyncio HealthServicer, once bound
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    # -- running ---------------------------------------------------------------------

    def registration(self) -> Registration:
        """The ReadinessService to pass to ``service_kit.server.start_server``."""
        return Registration(
            SERVICE_NAME, pb_grpc.add_ReadinessServiceServicer_to_server, _Servicer(self)
        )

    async def start(self, health: Any) -> None:
        """Runs every check once, sets the health status, then checks in the background.

        ``health`` is the server's ``grpc_health`` asyncio servicer
        (``RunningServer.health``).
        """
        self._health = health
        await self.run_once()
        self._task = asyncio.create_task(self._loop(), name=f"readiness {self.service_name}")

    async def stop(self) -> None:
        """Stops checking (before the server marks everything NOT_SERVING at its stop)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("readiness checks of %s failed", self.service_name)

    async def run_once(self) -> None:
        """Runs every check (concurrently, each bounded) and updates the health status."""
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        now = self._clock()
        for check, result in zip(self.checks, results, strict=True):
            previous = self._latest.get(check.name)
            if previous is None or previous.result.status != result.status:
                level = logging.INFO if result.status == Status.OK else logging.WARNING
                log.log(
                    level,
                    "%s: %s is %s%s",
                    self.service_name,
                    check.name,
                    result.status.value,
                    f" ({result.reason})" if result.reason else "",
                )
            self._latest[check.name] = _Latest(result, now)
            CHECK_STATUS.labels(self.service_name, check.name).set(_RANK[result.status])
        await self._set_health(self.ready)

    async def _run(self, check: Check) -> Result:
        try:
            async with asyncio.timeout(check.timeout):
                return await check.run()
        except TimeoutError:
            return down(f"the check did not finish within {check.timeout:.1f}s")
        except DependencyUnavailable as exc:
            return down(exc.message)
        except Exception as exc:
            outage = classify(exc)
            if outage is not None:
                return down(f"{outage.system} is unavailable: {outage.reason}")
            log.exception("readiness check %s of %s failed", check.name, self.service_name)
            return down(f"the check failed ({type(exc).__name__}); see the service log")

    async def _set_health(self, serving: bool) -> None:
        if self._health is None or serving == self._serving:
            return
        self._serving = serving
        await self._health.set(
            self.service_name,
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )

    # -- reading ---------------------------------------------------------------------

    def result(self, name: str) -> Result | None:
        """The latest result of one check (None before it first ran)."""
        latest = self._latest.get(name)
        return None if latest is None else latest.result

    @property
    def role(self) -> str:
        return self._role() if self._role is not None else ""

    @property
    def status(self) -> Status:
        """DOWN if a required check is DOWN; else the worst of DEGRADED/OK over all checks
        (a non-required check that is DOWN makes the service DEGRADED)."""
        worst = Status.OK
        for check in self.checks:
            latest = self._latest.get(check.name)
            if latest is None:
                continue
            status = latest.result.status
            if status == Status.DOWN and not check.required:
                status = Status.DEGRADED
            if _RANK[status] > _RANK[worst]:
                worst = status
        return worst

    @property
    def ready(self) -> bool:
        return self.status != Status.DOWN and self.role != "standby"

    def report(self) -> pb.GetReadinessResponse:
        now = self._clock()
        checks = []
        for check in self.checks:
            latest = self._latest.get(check.name)
            if latest is None:
                continue
            checks.append(
                pb.Check(
                    name=check.name,
                    status=latest.result.status.pb,
                    reason=latest.result.reason,
                    required=check.required,
                    details=dict(latest.result.details),
                    age_seconds=max(now - latest.at, 0.0),
                )
            )
        return pb.GetReadinessResponse(
            service=self.service_name,
            status=self.status.pb,
            ready=self.ready,
            role=self.role,
            checks=checks,
            details=dict(self._details()) if self._details is not None else {},
        )


class _Servicer(pb_grpc.ReadinessServiceServicer):
    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    async def GetReadiness(
        self, request: pb.GetReadinessRequest, context: Any
    ) -> pb.GetReadinessResponse:
        return self._readiness.report()


# -- another of our services as a dependency --------------------------------------------


async def fetch(channel: grpc.aio.Channel, *, deadline: float) -> pb.GetReadinessResponse:
    """Another service's readiness report, ``deadline`` seconds at most (raises
    ``grpc.aio.AioRpcError``)."""
    stub = pb_grpc.ReadinessServiceStub(channel)
    response: pb.GetReadinessResponse = await stub.GetReadiness(
        pb.GetReadinessRequest(), timeout=deadline
    )
    return response


def not_ready_reasons(report: pb.GetReadinessResponse) -> str:
    """Why a report says not ready: its required DOWN checks' reasons, or its role."""
    reasons = [
        f"{c.name}: {c.reason}" if c.reason else c.name
        for c in report.checks
        if c.status == pb.CHECK_STATUS_DOWN and c.required
    ]
    if report.role == "standby":
        reasons.append("it is a standby")
    return "; ".join(reasons) or "not ready"


def peer_check(
    name: str,
    dependency: Dependency,
    channels: Sequence[grpc.aio.Channel],
    *,
    required: bool,
    timeout: float = 1.5,
    on_report: Callable[[pb.GetReadinessResponse], None] | None = None,
) -> Check:
    """A check of another of our services at one or more addresses (a leader and its
    standbys): OK when one of them is ready; else DOWN with their reasons (a service's
    own degradations show in its own report). ``on_report`` sees the ready report."""

    async def ask(channel: grpc.aio.Channel) -> pb.GetReadinessResponse | str:
        try:
            return await fetch(channel, deadline=timeout)
        except grpc.aio.AioRpcError as exc:
            return f"it cannot be reached ({exc.code().name})"

    async def run() -> Result:
        answers = await asyncio.gather(*(ask(channel) for channel in channels))
        reasons: list[str] = []
        for answer in answers:
            if isinstance(answer, str):
                reasons.append(answer)
            elif answer.ready:
                if on_report is not None:
                    on_report(answer)
                return ok()
            else:
                reasons.append(not_ready_reasons(answer))
        return down(f"{dependency.describe()} is not ready: {'; '.join(reasons)}")

    return Check(name, run, required=required, timeout=timeout + 0.5)
