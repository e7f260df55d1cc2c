"""``GET /health``, ``/health/ready`` and ``/health/live``: the system's health.

* ``/health/live`` (liveness): 200 ``{"status": "ok"}`` while the gateway
  serves HTTP; no backend is asked. A supervisor restarts a gateway that
  fails it; a failing dependency is no reason to.
* ``/health/ready`` and ``/health`` (readiness; ``/health`` is the seed's
  route, on every port): asks every backend, concurrently and each within
  ``GATEWAY_HEALTH_TIMEOUT_SECONDS``, for its readiness report
  (``cqrs.health.v1.ReadinessService``: each dependency and the projector,
  ``ok``/``degraded``/``down`` with a reason), its ``grpc.health.v1``
  status, and the store's ``CountEvents`` (as the gateway's service
  identity).

The rule for ``status`` and the HTTP code:

* ``down`` (503) when a backend cannot be reached or is not ready (one of
  its *required* dependencies is down, e.g. query_svc's read model
  database, the store's storage; or it is a standby), or the event count
  cannot be read;
* else ``degraded`` (200) when a backend reports something degraded or a
  non-required dependency down (the read model stalled at a position, the
  Kafka relay behind, the store unreachable from query_svc);
* else ``ok`` (200).

The body keeps the seed's keys (``status``, ``total_events``: the store's
event count) and the earlier ``event_count`` (the same number) and
``services`` (each backend's ``grpc.health.v1`` status), and adds
``backends``: per backend its ``status``, ``ready``, ``role`` (the store's
``leader``/``standby``), ``reason`` (when it could not be asked) and
``checks`` (per dependency: ``status``, ``required``, ``reason`` and its
figures, e.g. ``position``, ``head``, ``behind``, ``stalled_seconds``).
Numbers in the body are JSON numbers; a count that could not be read is
``null``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import grpc
from cqrs.eventstore.v1 import event_store_pb2, event_store_pb2_grpc
from cqrs.health.v1 import readiness_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.backends import Backends
from gateway.errors import GatewayError
from gateway.settings import STORE_SERVICE, BackendTarget
from service_kit import readiness

log = logging.getLogger(__name__)

MetadataSource = Callable[[], list[tuple[str, str]]]
SERVING = "SERVING"
OK: Final = "ok"
DEGRADED: Final = "degraded"
DOWN: Final = "down"

_STATUS_WORDS: Final = {
    readiness_pb2.CHECK_STATUS_OK: OK,
    readiness_pb2.CHECK_STATUS_DEGRADED: DEGRADED,
    readiness_pb2.CHECK_STATUS_DOWN: DOWN,
}
_RANK: Final = {OK: 0, DEGRADED: 1, DOWN: 2}


def liveness() -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/health/live``."""
    return 200, {"status": OK}


async def check(
    backends: Backends,
    targets: Sequence[BackendTarget],
    *,
    service_metadata: MetadataSource,
    deadline: float,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/health`` and ``/health/ready`` (module docstring)."""
    statuses, reports, count = await asyncio.gather(
        asyncio.gather(*(_serving_status(backends, t, deadline) for t in targets)),
        asyncio.gather(*(_backend_report(backends, t, deadline) for t in targets)),
        _event_count(backends, service_metadata, deadline),
    )
    services = {t.key: status for t, status in zip(targets, statuses, strict=True)}
    detail = {t.key: report for t, report in zip(targets, reports, strict=True)}
    worst = OK
    for status, report in zip(statuses, reports, strict=True):
        backend = DOWN if status != SERVING or not report["ready"] else report["status"]
        worst = max(worst, backend, key=_RANK.__getitem__)
    if count is None:
        worst = DOWN
    body = {
        "status": worst,
        "total_events": count,
        "event_count": count,
        "services": services,
        "backends": detail,
    }
    return (503 if worst == DOWN else 200), body


async def _serving_status(backends: Backends, target: BackendTarget, deadline: float) -> str:
    try:
        stub = health_pb2_grpc.HealthStub(backends.channel(target.service))
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service=target.service), timeout=deadline
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("health of %s at %s: %s", target.key, target.target, exc.code().name)
        return str(exc.code().name)
    except GatewayError:
        return "UNAVAILABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def _backend_report(
    backends: Backends, target: BackendTarget, deadline: float
) -> dict[str, Any]:
    try:
        report = await readiness.fetch(backends.channel(target.service), deadline=deadline)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            # A backend without readiness reports (an older release): health alone.
            return {"status": OK, "ready": True, "role": "", "reason": "", "checks": {}}
        return _unreachable(f"{target.key} service cannot be asked ({exc.code().name})")
    except GatewayError as exc:
        return _unreachable(exc.message)
    return {
        "status": _STATUS_WORDS.get(report.status, DOWN),
        "ready": report.ready,
        "role": report.role,
        "reason": "" if report.ready else readiness.not_ready_reasons(report),
        "checks": {c.name: _check(c) for c in report.checks},
    }


def _unreachable(reason: str) -> dict[str, Any]:
    return {"status": DOWN, "ready": False, "role": "", "reason": reason, "checks": {}}


def _check(check: readiness_pb2.Check) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": _STATUS_WORDS.get(check.status, DOWN),
        "required": check.required,
        "reason": check.reason,
    }
    for name, value in sorted(check.details.items()):
        out[name] = int(value) if float(value).is_integer() else value
    return out


async def _event_count(
    backends: Backends, service_metadata: MetadataSource, deadline: float
) -> int | None:
    try:
        stub = event_store_pb2_grpc.EventStoreServiceStub(backends.channel(STORE_SERVICE))
        reply = await stub.CountEvents(
            event_store_pb2.CountEventsRequest(), timeout=deadline, metadata=service_metadata()
        )
    except grpc.aio.AioRpcError as exc:
        log.warning("health: CountEvents failed: %s %s", exc.code().name, exc.details())
        return None
    except GatewayError:
        return None
    return int(reply.count)
