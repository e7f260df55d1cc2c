"""Helpers for store_svc tests: building user events and talking to the store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, json_format, struct_pb2

import domain

if TYPE_CHECKING:
    # mypy-protobuf types an aio channel's stub as the Async variant (stub-only name).
    StoreStub = pb_grpc.EventStoreServiceAsyncStub
else:
    StoreStub = pb_grpc.EventStoreServiceStub

FAKE_HASH = "$2b$04$" + "x" * 53  # looks like bcrypt, so a leak is detectable
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(dict(values))
    return s


def proposed(event: domain.DomainEvent) -> pb.ProposedEvent:
    """A ProposedEvent for a domain event, with the claims it takes/releases."""
    changes = domain.claims_for(event)
    return pb.ProposedEvent(
        event_id=str(uuid.uuid4()),
        event_type=event.EVENT_TYPE,
        payload=struct(domain.event_to_payload(event)),
        claims=[pb.Claim(namespace=domain.EMAIL_CLAIM_NAMESPACE, value=v) for v in changes.take],
        releases=[
            pb.Claim(namespace=domain.EMAIL_CLAIM_NAMESPACE, value=v) for v in changes.release
        ],
    )


def created(user_id: str, email: str) -> domain.UserCreated:
    return domain.UserCreated(
        aggregate_id=user_id,
        version=1,
        occurred_at=NOW,
        email=email,
        password_hash=FAKE_HASH,
        role="user",
    )


def append_request(
    user_id: str, events: list[domain.DomainEvent], *, exact: int | None
) -> pb.AppendRequest:
    req = pb.AppendRequest(aggregate_id=user_id, aggregate_type="user")
    if exact is None:
        req.any.CopyFrom(empty_pb2.Empty())
    else:
        req.exact = exact
    req.events.extend(proposed(e) for e in events)
    return req


async def register(stub: StoreStub, email: str) -> str:
    """Appends a user.created for a new user; returns its id."""
    user_id = str(uuid.uuid4())
    await stub.Append(append_request(user_id, [created(user_id, email)], exact=0), timeout=10)
    return user_id


def to_json(message: Any) -> str:
    return json_format.MessageToJson(message)
