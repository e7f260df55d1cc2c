"""What the client's methods return: small frozen dataclasses with Python types.

Times are aware UTC datetimes (``None`` when the server left them unset, such
as ``deactivated_at`` of an active user); a user's status is :class:`UserStatus`,
whose values are the words the HTTP API writes (``"active"``,
``"deactivated"``), so HTTP and Python clients spell it alike.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import betterproto
from betterproto.lib.google.protobuf import Struct, Value

from cqrs_users_client.proto.cqrs.common import v1 as common
from cqrs_users_client.proto.cqrs.eventstore import v1 as store
from cqrs_users_client.proto.cqrs.query import v1 as query

__all__ = [
    "Change",
    "Event",
    "Registered",
    "Session",
    "StateAt",
    "User",
    "UserState",
    "UserStatus",
    "UsersPage",
]

_UNSET = datetime(1970, 1, 1, tzinfo=timezone.utc)  # betterproto's value of an unset Timestamp


def _when(value: datetime | None) -> datetime | None:
    return None if value is None or value == _UNSET else value


def _struct(struct: Struct) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as plain JSON values (whole numbers as ints)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _value(value: Value) -> Any:
    kind, found = betterproto.which_one_of(value, "kind")
    item: Any = found
    if kind == "struct_value":
        return _struct(item)
    if kind == "list_value":
        return [_value(v) for v in item.values]
    if kind == "number_value":
        return int(item) if float(item).is_integer() else item
    if kind == "null_value" or not kind:
        return None
    return item  # string_value, bool_value


class UserStatus(str, enum.Enum):
    """A user account's lifecycle status, as the HTTP API writes it."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"

    @classmethod
    def from_proto(cls, value: int) -> UserStatus | None:
        """The status of a ``UserStatus`` proto value (``None`` for UNSPECIFIED)."""
        return _FROM_PROTO.get(int(value))

    def to_proto(self) -> common.UserStatus:
        return common.UserStatus(_TO_PROTO[self])


# betterproto's enum members are ints to a type checker: keyed by number.
_FROM_PROTO: dict[int, UserStatus] = {
    common.UserStatus.ACTIVE: UserStatus.ACTIVE,
    common.UserStatus.DEACTIVATED: UserStatus.DEACTIVATED,
}
_TO_PROTO: dict[UserStatus, int] = {status: number for number, status in _FROM_PROTO.items()}


@dataclass(frozen=True)
class Registered:
    """A new user: its id, stream version (1) and the event's global position."""

    id: str
    version: int
    position: int


@dataclass(frozen=True)
class Change:
    """A command's outcome: the user's new version and the event's global position.

    Pass ``position`` as ``min_position`` to a read to see this change there.
    ``email`` is the email in effect after a ChangeEmail (empty for others).
    """

    id: str
    version: int
    position: int
    message: str = ""
    email: str = ""


@dataclass(frozen=True)
class User:
    """A user as the read model holds it."""

    id: str
    email: str
    role: str
    status: UserStatus | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    last_login_at: datetime | None
    login_count: int
    deactivated_at: datetime | None
    email_verified: bool

    @classmethod
    def from_proto(cls, user: query.User) -> User:
        return cls(
            id=user.id,
            email=user.email,
            role=user.role,
            status=UserStatus.from_proto(user.status),
            version=user.version,
            created_at=_when(user.created_at),
            updated_at=_when(user.updated_at),
            last_login_at=_when(user.last_login_at),
            login_count=user.login_count,
            deactivated_at=_when(user.deactivated_at),
            email_verified=user.email_verified,
        )


@dataclass(frozen=True)
class UsersPage:
    """One page of users; pass ``next_page_token`` for the next ("" when none)."""

    users: tuple[User, ...]
    next_page_token: str


@dataclass(frozen=True)
class Session:
    """What a login or a refresh gives: the tokens the client now uses.

    ``user`` is set by a login (a refresh does not return the user).
    """

    token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str
    user: User | None = None


@dataclass(frozen=True)
class UserState:
    """A user's state folded from its events (time travel); never a password hash."""

    user_id: str
    email: str
    role: str
    status: UserStatus | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    password_version: int
    password_changed_at: datetime | None
    email_changed_at: datetime | None
    deactivated_at: datetime | None
    deactivation_reason: str
    last_login_at: datetime | None
    login_count: int
    email_verified: bool

    @classmethod
    def from_proto(cls, state: store.UserState) -> UserState:
        return cls(
            user_id=state.user_id,
            email=state.email,
            role=state.role,
            status=UserStatus.from_proto(state.status),
            version=state.version,
            created_at=_when(state.created_at),
            updated_at=_when(state.updated_at),
            password_version=state.password_version,
            password_changed_at=_when(state.password_changed_at),
            email_changed_at=_when(state.email_changed_at),
            deactivated_at=_when(state.deactivated_at),
            deactivation_reason=state.deactivation_reason,
            last_login_at=_when(state.last_login_at),
            login_count=state.login_count,
            email_verified=state.email_verified,
        )


@dataclass(frozen=True)
class StateAt:
    """A state at a point of the stream, and how many events were folded into it."""

    state: UserState
    events_replayed: int
    as_of: datetime | None = None


@dataclass(frozen=True)
class Event:
    """A stored event (a password hash reads ``"[REDACTED]"``)."""

    position: int
    event_id: str
    aggregate_id: str
    version: int
    event_type: str
    timestamp: datetime | None
    payload: dict[str, Any]
    correlation_id: str
    causation_id: str
    traceparent: str = ""  # W3C trace context of the request that caused it, "" if untraced

    @classmethod
    def from_proto(cls, event: store.Event) -> Event:
        return cls(
            position=event.position,
            event_id=event.event_id,
            aggregate_id=event.aggregate_id,
            version=event.version,
            event_type=event.event_type,
            timestamp=_when(event.timestamp),
            payload=_struct(event.payload) if event.payload is not None else {},
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            traceparent=event.traceparent,
        )
