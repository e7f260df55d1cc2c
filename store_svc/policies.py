"""Who may call each EventStoreService method (deny by default).

Writes and the unredacted load are the services' alone; a user may read
their own stream, time travel and snapshots; the global log is admin's.
``Subscribe(include_secrets=true)`` is further limited to services inside
the servicer, since a role alone cannot express a per-field rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from cqrs.eventstore.v1 import event_store_pb2

from service_kit.auth import Access

SERVICE_NAME: Final = event_store_pb2.DESCRIPTOR.services_by_name["EventStoreService"].full_name


def method(name: str) -> str:
    """The full gRPC method name, e.g. ``/cqrs.eventstore.v1.EventStoreService/Append``."""
    return f"/{SERVICE_NAME}/{name}"


_OWNER = Access.owner("aggregate_id")

POLICIES: Final[Mapping[str, Access]] = MappingProxyType(
    {
        method("Append"): Access.SERVICE,
        method("AppendStream"): Access.SERVICE,
        method("LoadAggregate"): Access.SERVICE,
        method("ReadStream"): _OWNER,
        method("GetAggregateEvents"): _OWNER,
        method("ListEvents"): Access.ADMIN,
        method("CountEvents"): Access.ADMIN,
        method("ReplayEvents"): Access.ADMIN,
        method("Subscribe"): Access.ADMIN,
        method("GetState"): _OWNER,
        method("GetStateAt"): _OWNER,
        method("GetHistory"): _OWNER,
        method("CompareStates"): _OWNER,
        method("ListStatesAt"): Access.ADMIN,
        method("CreateSnapshot"): _OWNER,
        method("GetSnapshot"): _OWNER,
        method("GetStateFromSnapshot"): _OWNER,
    }
)
