"""Conversions between the engine's records, the domain, and protobuf messages.

Stored payloads hold personal fields sealed (``pii.codec``). A read opens
them with the codec (plain text, or "[ERASED]" once the user was erased);
only the relay passes ``codec=None`` to publish the stored encoding as is.

Invariant: every function producing a public message redacts secrets (the
contract's ``SENSITIVITY_SECRET`` fields); only ``event_to_pb(...,
redact=False)`` leaves them, and only LoadAggregate, a service's Subscribe
and the relay call it so.
"""

from __future__ import annotations

import json
from typing import Any

from cqrs.common.v1 import user_status_pb2
from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf import struct_pb2

import domain
from domain.upcasting import upcast
from pii.codec import PayloadCodec, redact_event
from service_kit.timeconv import to_timestamp
from store_svc.engine import RecordedEvent

_STATUS = {
    domain.UserStatus.ACTIVE: user_status_pb2.USER_STATUS_ACTIVE,
    domain.UserStatus.DEACTIVATED: user_status_pb2.USER_STATUS_DEACTIVATED,
    domain.UserStatus.ERASED: user_status_pb2.USER_STATUS_ERASED,
}


def payload_dict(record: RecordedEvent) -> dict[str, Any]:
    """The stored JSON payload as a dict."""
    value = json.loads(record.payload)
    if not isinstance(value, dict):
        raise ValueError(f"event {record.event_id}: payload is not a JSON object")
    return value


def open_payload(
    record: RecordedEvent, codec: PayloadCodec | None, *, redact: bool
) -> dict[str, Any]:
    """The payload as a reader sees it: upcast to its type's current version and
    opened with ``codec`` (the stored encoding as is if None), secrets redacted
    if ``redact``."""
    if codec is None:
        payload = payload_dict(record)  # the stored encoding, as is (the relay's)
        return redact_event(record.event_type, payload) if redact else payload
    payload = upcast(record.event_type, payload_dict(record))
    return codec.open_event(
        record.event_type, payload, record.aggregate_id, reveal_secrets=not redact
    )


def to_domain(record: RecordedEvent, codec: PayloadCodec) -> domain.DomainEvent:
    """The domain event a stored record holds (personal fields opened)."""
    return domain.event_from_payload(
        record.event_type,
        open_payload(record, codec, redact=False),
        aggregate_id=record.aggregate_id,
        version=record.version,
        occurred_at=record.timestamp,
    )


def struct_of(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def event_to_pb(
    record: RecordedEvent, codec: PayloadCodec | None, *, redact: bool = True
) -> pb.Event:
    """A stored record as an Event message: personal fields opened by ``codec``
    (kept sealed if None), secrets redacted unless told."""
    payload = open_payload(record, codec, redact=redact)
    return pb.Event(
        position=record.position,
        event_id=record.event_id,
        aggregate_id=record.aggregate_id,
        aggregate_type=record.aggregate_type,
        version=record.version,
        event_type=record.event_type,
        timestamp=to_timestamp(record.timestamp),
        payload=struct_of(payload),
        correlation_id=record.correlation_id,
        causation_id=record.causation_id,
        traceparent=record.traceparent,
    )


def state_to_pb(state: domain.UserState) -> pb.UserState:
    """A public UserState message: every field but the password hash."""
    msg = pb.UserState(
        user_id=state.user_id,
        email=state.email,
        role=state.role,
        status=_STATUS[state.status],
        version=state.version,
        created_at=to_timestamp(state.created_at),
        updated_at=to_timestamp(state.updated_at),
        password_version=state.password_version,
        deactivation_reason=state.deactivation_reason,
        login_count=state.login_count,
        email_verified=state.email_verified,
        credential_version=state.credential_version,
    )
    if state.password_changed_at is not None:
        msg.password_changed_at.CopyFrom(to_timestamp(state.password_changed_at))
    if state.email_changed_at is not None:
        msg.email_changed_at.CopyFrom(to_timestamp(state.email_changed_at))
    if state.deactivated_at is not None:
        msg.deactivated_at.CopyFrom(to_timestamp(state.deactivated_at))
    if state.last_login_at is not None:
        msg.last_login_at.CopyFrom(to_timestamp(state.last_login_at))
    if state.email_verified_at is not None:
        msg.email_verified_at.CopyFrom(to_timestamp(state.email_verified_at))
    if state.reactivated_at is not None:
        msg.reactivated_at.CopyFrom(to_timestamp(state.reactivated_at))
    return msg
