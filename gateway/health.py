"""``GET /health``: the gateway's own view of the system.

Asks every backend's standard ``grpc.health.v1.Health/Check`` (for its
service name) and the event store's ``CountEvents`` (as the gateway's
service identity), concurrently and each with a short deadline. 200 with
``{"status": "ok", "services": {"store": "SERVING", ...}, "event_count": N}``
when all serve and the count answered; otherwise 503 with the same shape,
``"status": "unavailable"``, the failing service's status (e.g.
``UNAVAILABLE``, ``NOT_SERVING``) and ``"event_count": null`` if it failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from cqrs.eventstore.v1 import event_store_pb2, event_store_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.backends import Backends
from gateway.errors import GatewayError
from gateway.settings import STORE_SERVICE, BackendTarget

log = logging.getLogger(__name__)

MetadataSource = Callable[[], list[tuple[str, str]]]
SERVING = "SERVING"


async def check(
    backends: Backends,
    targets: Sequence[BackendTarget],
    *,
    service_metadata: MetadataSource,
    deadline: float,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of the health answer."""
    statuses, count = await asyncio.gather(
        asyncio.gather(*(_serving_status(backends, t, deadline) for t in targets)),
        _event_count(backends, service_metadata, deadline),
    )
    services = {t.key: status for t, status in zip(targets, statuses, strict=True)}
    healthy = all(s == SERVING for s in statuses) and count is not None
    body = {
        "status": "ok" if healthy else "unavailable",
        "services": services,
        "event_count": count,
    }
    return (200 if healthy else 503), body


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
