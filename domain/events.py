"""Domain events: immutable facts about one user, in stream order.

Invariants (checked at construction, so a malformed event cannot exist):
- ``aggregate_id`` is a non-empty string: the user's id, i.e. the stream.
- ``version`` is the event's 1-based position in that stream (an ``int``,
  ``>= 1``); ``evolve`` insists on ``state.version + 1``.
- ``occurred_at`` is an aware UTC ``datetime``.
- ``EVENT_TYPE`` is the stable wire name stored with the event; never rename.

Business rules (email syntax, password policy) are enforced by ``decide``
*before* an event exists, and are deliberately NOT re-checked here: events
are history, and tightening a rule later must not make old streams unreadable.

Events that carry a ``password_hash`` hide it from ``repr`` so that logging an
event never leaks it; public reads must go through
:func:`domain.serialization.redact_payload`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import ClassVar, Final, TypeAlias

from domain.errors import ValidationError
from domain.timefmt import require_utc

__all__ = [
    "ENVELOPE_FIELDS",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "DomainEvent",
    "EmailChanged",
    "LoginRecorded",
    "PasswordChanged",
    "UserCreated",
    "UserDeactivated",
]

# Names of the envelope fields: the store keeps these beside the payload.
ENVELOPE_FIELDS: Final[tuple[str, ...]] = ("aggregate_id", "version", "occurred_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    """Fields shared by every event (the store's envelope)."""

    EVENT_TYPE: ClassVar[str]

    aggregate_id: str
    version: int
    occurred_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.aggregate_id, str) or not self.aggregate_id:
            raise ValidationError("aggregate_id", "must be a non-empty string")
        # bool is an int subclass; True must not pass as version 1.
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise ValidationError("version", "must be an integer >= 1")
        require_utc(self.occurred_at, "occurred_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCreated(_Event):
    """A user was registered. Always version 1; ``email`` is normalised."""

    EVENT_TYPE: ClassVar[str] = "user.created"

    email: str
    password_hash: str = field(repr=False)
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordChanged(_Event):
    """The user's password hash was replaced."""

    EVENT_TYPE: ClassVar[str] = "user.password.changed"

    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailChanged(_Event):
    """The user's email changed from ``old_email`` to ``new_email`` (both normalised)."""

    EVENT_TYPE: ClassVar[str] = "user.email.changed"

    old_email: str
    new_email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDeactivated(_Event):
    """The user was deactivated; ``reason`` may be empty. Terminal."""

    EVENT_TYPE: ClassVar[str] = "user.deactivated"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRecorded(_Event):
    """A successful login; ``client_address`` may be empty."""

    EVENT_TYPE: ClassVar[str] = "user.login.recorded"

    client_address: str


DomainEvent: TypeAlias = (
    UserCreated | PasswordChanged | EmailChanged | UserDeactivated | LoginRecorded
)

_CLASSES: tuple[type[DomainEvent], ...] = (
    UserCreated,
    PasswordChanged,
    EmailChanged,
    UserDeactivated,
    LoginRecorded,
)
# Read-only: the wire-name registry must not be patched at run time.
EVENT_CLASSES: Final[Mapping[str, type[DomainEvent]]] = MappingProxyType(
    {cls.EVENT_TYPE: cls for cls in _CLASSES}
)
EVENT_TYPES: Final[tuple[str, ...]] = tuple(EVENT_CLASSES)
