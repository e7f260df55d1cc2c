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

Secret fields (a ``password_hash``, a one-time token's ``token_hash`` and
``token_nonce``) are hidden from ``repr`` so that logging an event never
leaks them; the contract marks them secret, and ``pii.codec`` hides them from
every public read (each class's docstring lists them).
Personal data: ``email``, ``old_email``, ``new_email``, ``client_address``.

The contract states all of this: each event type is a message of
``protos/cqrs/events/v1/user_events.proto`` whose fields carry their
protection (``cqrs.privacy.v1``); a test checks that every class here has
exactly its message's fields, and ``pii.codec`` applies the annotations.
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
    "EmailVerified",
    "LoginRecorded",
    "PasswordChanged",
    "PasswordReset",
    "PasswordResetRequested",
    "SessionRevoked",
    "SessionsRevoked",
    "UserCreated",
    "UserDeactivated",
    "UserErased",
    "UserReactivated",
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
    """A user was registered. Always version 1; ``email`` is normalised.

    Secret: ``password_hash``.
    """

    EVENT_TYPE: ClassVar[str] = "user.created"

    email: str
    password_hash: str = field(repr=False)
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordChanged(_Event):
    """The user changed their password (knowing the old one).

    Ends every session but ``kept_session_id``: the session that made the
    change, which has just proved the old password, stays signed in ("" when
    the change came from no session of this user, e.g. an admin who knew the
    old password: then every session ends). See :mod:`domain.sessions`.

    Secret: ``password_hash``. ``kept_session_id`` was added later: older
    stored events lack it and read as "" (every session ended).
    """

    EVENT_TYPE: ClassVar[str] = "user.password.changed"

    password_hash: str = field(repr=False)
    kept_session_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailChanged(_Event):
    """The user's email changed from ``old_email`` to ``new_email`` (both normalised)."""

    EVENT_TYPE: ClassVar[str] = "user.email.changed"

    old_email: str
    new_email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDeactivated(_Event):
    """The user was deactivated; ``reason`` may be empty. Ends every session.

    Only :class:`UserReactivated` may follow it.
    """

    EVENT_TYPE: ClassVar[str] = "user.deactivated"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRecorded(_Event):
    """A successful login; ``client_address`` may be empty."""

    EVENT_TYPE: ClassVar[str] = "user.login.recorded"

    client_address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordReset(_Event):
    """The password was set without the old one. Ends every session.

    ``method`` is ``"admin"`` (an admin set it; ``actor`` is the admin's id)
    or ``"token"`` (the user confirmed a mailed reset token; ``actor`` is
    ""). Consumes any pending reset token. Secret: ``password_hash``.
    """

    EVENT_TYPE: ClassVar[str] = "user.password.reset"

    password_hash: str = field(repr=False)
    method: str
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordResetRequested(_Event):
    """A one-time password reset token was issued, to be mailed to ``email``.

    The token itself is stored nowhere: the mailer derives it from
    ``token_nonce`` with a key it holds (``service_kit.mail_tokens``), and
    only its SHA-256 (``token_hash``) is kept to check it. Valid until
    ``expires_at``; a newer request replaces it. Secret: ``token_nonce``,
    ``token_hash``.
    """

    EVENT_TYPE: ClassVar[str] = "user.password_reset.requested"

    token_nonce: str = field(repr=False)
    token_hash: str = field(repr=False)
    expires_at: datetime
    email: str

    def __post_init__(self) -> None:
        _Event.__post_init__(self)
        require_utc(self.expires_at, "expires_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserReactivated(_Event):
    """A deactivated user was made active again by an admin; ``reason`` may be empty.

    Sessions ended by the deactivation stay ended.
    """

    EVENT_TYPE: ClassVar[str] = "user.reactivated"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRevoked(_Event):
    """One session ended (``reason``: ``logout``, ``refresh token reused``, ...)."""

    EVENT_TYPE: ClassVar[str] = "user.session.revoked"

    session_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionsRevoked(_Event):
    """Every session of the user ended at once (``reason``: ``logout everywhere``, ...)."""

    EVENT_TYPE: ClassVar[str] = "user.sessions.revoked"

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailVerified(_Event):
    """The user proved they receive mail at ``email`` (their current address)."""

    EVENT_TYPE: ClassVar[str] = "user.email.verified"

    email: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserErased(_Event):
    """The user's personal data was erased (crypto-shredding); the stream's last event.

    ``email`` is the address released (personal: it reads "[ERASED]" once the
    store destroyed the user's key, right after storing this event);
    ``actor`` is who asked (the user's own id, or an admin's). Ends every
    session; no command is accepted for the user afterwards.
    """

    EVENT_TYPE: ClassVar[str] = "user.erased"

    email: str
    actor: str


DomainEvent: TypeAlias = (
    UserCreated
    | PasswordChanged
    | EmailChanged
    | UserDeactivated
    | LoginRecorded
    | PasswordReset
    | PasswordResetRequested
    | UserReactivated
    | SessionRevoked
    | SessionsRevoked
    | EmailVerified
    | UserErased
)

_CLASSES: tuple[type[DomainEvent], ...] = (
    UserCreated,
    PasswordChanged,
    EmailChanged,
    UserDeactivated,
    LoginRecorded,
    PasswordReset,
    PasswordResetRequested,
    UserReactivated,
    SessionRevoked,
    SessionsRevoked,
    EmailVerified,
    UserErased,
)
# Read-only: the wire-name registry must not be patched at run time.
EVENT_CLASSES: Final[Mapping[str, type[DomainEvent]]] = MappingProxyType(
    {cls.EVENT_TYPE: cls for cls in _CLASSES}
)
EVENT_TYPES: Final[tuple[str, ...]] = tuple(EVENT_CLASSES)
