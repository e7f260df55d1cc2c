"""query_svc's readiness checks (see :mod:`service_kit.readiness`).

* ``read_model_db`` (required): ``SELECT 1`` within the read bound; its
  outcome also drives the database's circuit breaker, so a database that
  came back closes it within a check interval.
* ``event_store`` (not required: reads are served without it; logins'
  catch-up and rebuilds need it): the store's own readiness report, whose
  ``head`` tells the projector where it should be.
* ``projector`` (not required): DEGRADED while stalled ("read model stalled
  at position P for N s ..."), see :meth:`query_svc.projector.Projector.stall`.
"""

from __future__ import annotations

import grpc
from cqrs.health.v1 import readiness_pb2 as health_pb

from query_svc.db import Database
from query_svc.projector import Projector
from query_svc.servicer import SERVICE_NAME
from service_kit import readiness
from service_kit.dependency_errors import Dependency
from service_kit.readiness import Check, Readiness, Result


def query_readiness(
    *,
    database: Database,
    projector: Projector,
    store_channel: grpc.aio.Channel | None,
    store_target: str,
) -> Readiness:
    """The checks of query_svc; the event store is checked when a channel to it is given."""

    async def read_model_db() -> Result:
        await database.ping()
        return readiness.ok()

    def note_head(report: health_pb.GetReadinessResponse) -> None:
        head = report.details.get("head")
        if head is not None:
            projector.note_head(int(head))

    async def projector_state() -> Result:
        stall = projector.stall()
        if stall is not None:
            return readiness.degraded(
                stall.describe(),
                position=stall.position,
                head=stall.head,
                stalled_seconds=round(stall.seconds, 1),
            )
        applied, head = projector.applied_position, projector.known_head
        return readiness.ok(position=applied, head=head, behind=max(head - applied, 0))

    checks = [
        Check("read_model_db", read_model_db, required=True, timeout=database.limits.read + 0.5)
    ]
    if store_channel is not None:
        checks.append(
            readiness.peer_check(
                "event_store",
                Dependency("event store", f"store_svc at {store_target}"),
                [store_channel],
                required=False,
                on_report=note_head,
            )
        )
    checks.append(Check("projector", projector_state, required=False))
    return Readiness(
        SERVICE_NAME,
        checks,
        details=lambda: {
            "applied_position": projector.applied_position,
            "head": projector.known_head,
        },
    )
