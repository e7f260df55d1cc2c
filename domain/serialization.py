"""Wire forms of events and snapshots (JSON-safe dicts), and redaction.

Event payloads:
- ``event_to_payload`` returns only the event-specific fields; the envelope
  (``aggregate_id``, ``version``, ``occurred_at``) lives in the store's
  envelope and is passed back to ``event_from_payload`` separately.
- ``event_from_payload(t, event_to_payload(e), ...envelope of e) == e`` for
  every event ``e``.
- Unknown payload keys are ignored (tolerant reader); a missing key reads
  as the field's default when it has one (a field added to an event later
  must have one, so older stored events stay readable), else it raises
  :class:`~domain.errors.ValidationError`, like a mistyped one; unknown
  types raise :class:`~domain.errors.UnknownEventType`.

Payload values are strings; a ``datetime`` field (``expires_at``) travels as
an RFC 3339 string.

Redaction: payloads contain secrets (password hashes, one-time token hashes
and nonces), which no public read may return, and personal data. Which
fields are which is stated in the contract (``cqrs/events/v1``, the
``cqrs.privacy.v1`` options) and applied by ``pii.codec``, not here.

Snapshots: ``state_to_dict`` / ``state_from_dict`` are the *internal*
snapshot format and include the hash (the command side needs it to verify
passwords after loading from a snapshot). A snapshot whose
``schema_version`` differs from :data:`STATE_SCHEMA_VERSION` must be ignored
by the store (and is refused by ``state_from_dict``); bump the constant
whenever the dict's shape or meaning changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from datetime import datetime
from typing import Any, Final

from domain.errors import UnknownEventType, ValidationError
from domain.events import ENVELOPE_FIELDS, EVENT_CLASSES, DomainEvent
from domain.state import UserState, UserStatus
from domain.timefmt import format_timestamp, parse_timestamp

__all__ = [
    "STATE_SCHEMA_VERSION",
    "event_from_payload",
    "event_to_payload",
    "state_from_dict",
    "state_to_dict",
]

STATE_SCHEMA_VERSION: Final = 2


def _payload_fields(cls: type[DomainEvent]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in ENVELOPE_FIELDS)


# Every payload field of every event is a string or a datetime (sent as an
# RFC 3339 string); the check below keeps that assumption honest if an event
# ever grows another kind of field.
_PAYLOAD_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    event_type: _payload_fields(cls) for event_type, cls in EVENT_CLASSES.items()
}
# Fields added to an event after it was first stored carry a default, and a
# stored payload without them reads as that default (older events stay readable).
_DEFAULTED_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    event_type: frozenset(
        f.name for f in fields(cls) if f.name not in ENVELOPE_FIELDS and f.default is not MISSING
    )
    for event_type, cls in EVENT_CLASSES.items()
}
_DATETIME_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    event_type: frozenset(
        f.name
        for f in fields(cls)
        if f.name not in ENVELOPE_FIELDS and f.type in ("datetime", datetime)
    )
    for event_type, cls in EVENT_CLASSES.items()
}


def event_to_payload(event: DomainEvent) -> dict[str, str | int]:
    """Return the event-specific fields of ``event`` as a JSON-safe dict."""
    payload: dict[str, str | int] = {}
    for name in _PAYLOAD_FIELDS[event.EVENT_TYPE]:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = format_timestamp(value)
        if not isinstance(value, str | int):
            raise TypeError(f"{event.EVENT_TYPE}.{name} is not JSON-safe: {type(value)!r}")
        payload[name] = value
    return payload


def event_from_payload(
    event_type: str,
    payload: Mapping[str, object],
    *,
    aggregate_id: str,
    version: int,
    occurred_at: datetime,
) -> DomainEvent:
    """Rebuild an event from its type, payload and envelope; raise on bad data."""
    cls = EVENT_CLASSES.get(event_type)
    if cls is None:
        raise UnknownEventType(event_type)
    if not isinstance(payload, Mapping):
        raise ValidationError("payload", "must be a mapping")
    # Any: each field's type was checked just above (str, or a parsed datetime).
    values: dict[str, Any] = {}
    times, defaulted = _DATETIME_FIELDS[event_type], _DEFAULTED_FIELDS[event_type]
    for name in _PAYLOAD_FIELDS[event_type]:
        if name not in payload:
            if name in defaulted:
                continue  # an event stored before the field existed
            raise ValidationError(name, f"is required in a {event_type!r} payload")
        value = payload[name]
        if not isinstance(value, str):
            raise ValidationError(name, "must be a string")
        values[name] = parse_timestamp(value, name) if name in times else value
    # The envelope is checked by the event's own __post_init__.
    return cls(aggregate_id=aggregate_id, version=version, occurred_at=occurred_at, **values)


def state_to_dict(state: UserState) -> dict[str, object]:
    """Return the internal snapshot form of ``state`` (JSON-safe, includes the hash).

    Datetimes become RFC 3339 strings (``None`` stays ``None``), the status
    its string value; ``"schema_version"`` is :data:`STATE_SCHEMA_VERSION`.
    """
    data: dict[str, object] = {"schema_version": STATE_SCHEMA_VERSION}
    for f in fields(UserState):
        value = getattr(state, f.name)
        if isinstance(value, datetime):
            data[f.name] = format_timestamp(value)
        elif isinstance(value, UserStatus):
            data[f.name] = value.value
        else:
            data[f.name] = value
    return data


def state_from_dict(data: Mapping[str, object]) -> UserState:
    """Rebuild a state from :func:`state_to_dict` output; raise ``ValidationError`` if bad.

    ``state_from_dict(state_to_dict(s)) == s`` for every state ``s``. Unknown
    keys are ignored; a missing or mistyped field names itself in the error.
    """
    schema = data.get("schema_version")
    if isinstance(schema, bool) or schema != STATE_SCHEMA_VERSION:
        raise ValidationError("schema_version", f"must be {STATE_SCHEMA_VERSION}, got {schema!r}")
    status = _str(data, "status")
    try:
        parsed_status = UserStatus(status)
    except ValueError:
        raise ValidationError("status", f"unknown status {status[:32]!r}") from None
    return UserState(
        user_id=_str(data, "user_id"),
        email=_str(data, "email"),
        role=_str(data, "role"),
        status=parsed_status,
        version=_int(data, "version"),
        created_at=_datetime(data, "created_at"),
        updated_at=_datetime(data, "updated_at"),
        password_hash=_str(data, "password_hash"),
        password_version=_int(data, "password_version"),
        password_changed_at=_optional_datetime(data, "password_changed_at"),
        email_changed_at=_optional_datetime(data, "email_changed_at"),
        deactivated_at=_optional_datetime(data, "deactivated_at"),
        deactivation_reason=_str(data, "deactivation_reason"),
        last_login_at=_optional_datetime(data, "last_login_at"),
        login_count=_int(data, "login_count"),
        email_verified=_bool(data, "email_verified"),
        email_verified_at=_optional_datetime(data, "email_verified_at"),
        reactivated_at=_optional_datetime(data, "reactivated_at"),
        credential_version=_int(data, "credential_version"),
        email_set_version=_int(data, "email_set_version"),
        reset_token_hash=_str(data, "reset_token_hash"),
        reset_expires_at=_optional_datetime(data, "reset_expires_at"),
    )


def _get(data: Mapping[str, object], name: str) -> object:
    if name not in data:
        raise ValidationError(name, "is required in a state snapshot")
    return data[name]


def _str(data: Mapping[str, object], name: str) -> str:
    value = _get(data, name)
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string")
    return value


def _int(data: Mapping[str, object], name: str) -> int:
    value = _get(data, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(name, "must be an integer")
    return value


def _bool(data: Mapping[str, object], name: str) -> bool:
    value = _get(data, name)
    if not isinstance(value, bool):
        raise ValidationError(name, "must be a boolean")
    return value


def _datetime(data: Mapping[str, object], name: str) -> datetime:
    value = _get(data, name)
    if not isinstance(value, str):
        raise ValidationError(name, "must be an RFC 3339 timestamp string")
    return parse_timestamp(value, name)


def _optional_datetime(data: Mapping[str, object], name: str) -> datetime | None:
    if _get(data, name) is None:
        return None
    return _datetime(data, name)
