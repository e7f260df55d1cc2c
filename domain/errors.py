"""Domain errors: one root, one class per way a command or event can be refused.

Invariants:
- Every error raised by the ``domain`` package is a :class:`DomainError`, so a
  service can map the whole family to transport status codes in one place.
- ``str(error)`` is a complete, human-readable sentence fragment that never
  contains a password or a password hash.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "DomainError",
    "EventSequenceError",
    "InvalidCredentials",
    "InvalidToken",
    "LastActiveAdmin",
    "NotDeactivated",
    "UnknownEventType",
    "UserDeactivatedError",
    "UserNotFound",
    "ValidationError",
    "VersionConflict",
]


class DomainError(Exception):
    """Root of every error raised by the domain package."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationError(DomainError):
    """An input (or stored datum) broke a rule; ``field`` names which one.

    ``reason`` is the bare rule (``"must contain exactly one '@'"``) and
    ``str()`` prefixes the field: ``"email: must contain exactly one '@'"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidCredentials(DomainError):
    """A secret supplied by the caller did not match; ``field`` names which one."""

    def __init__(self, field: str = "password") -> None:
        super().__init__(f"{field}: does not match")
        self.field = field


class InvalidToken(DomainError):
    """A one-time token (password reset, email verification) does not open anything.

    One message for every reason (unknown, wrong, expired, already used), so
    a guesser learns nothing from it.
    """

    def __init__(self, field: str = "token") -> None:
        super().__init__(f"{field}: invalid, expired or already used")
        self.field = field


class UserNotFound(DomainError):
    """The command targets a user that has no events.

    ``user_id`` may be ``""`` when the caller did not say which id it loaded
    (commands other than ``RegisterUser`` do not carry the id).
    """

    def __init__(self, user_id: str = "") -> None:
        super().__init__(f"user {user_id!r} not found" if user_id else "user not found")
        self.user_id = user_id


class AlreadyExists(DomainError):
    """Something that must be unique exists already (a user id by default)."""

    def __init__(self, key: str, *, kind: str = "user") -> None:
        super().__init__(f"{kind} {key!r} already exists")
        self.key = key
        self.kind = kind


class UserDeactivatedError(DomainError):
    """The user is deactivated; no command is accepted for it any more."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is deactivated")
        self.user_id = user_id


class UserErasedError(DomainError):
    """The user's personal data was erased; no command is accepted for it any more."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is erased")
        self.user_id = user_id


class AlreadyErased(DomainError):
    """Erasing a user already erased (the service answers it as a success: idempotent)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is already erased")
        self.user_id = user_id


class NotDeactivated(DomainError):
    """Reactivating a user who is active."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id!r} is not deactivated")
        self.user_id = user_id


class LastActiveAdmin(DomainError):
    """Deactivating (or erasing) the only active admin would leave nobody to administer."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"user {user_id!r} is the last active admin; make another admin active first"
        )
        self.user_id = user_id


class VersionConflict(DomainError):
    """An event's version is not the one its stream expects next.

    ``expected`` is the only version that may be applied next
    (``state.version + 1``, or 1 for a new stream); ``actual`` is what came.
    """

    def __init__(self, expected: int, actual: int, *, aggregate_id: str = "") -> None:
        where = f" for {aggregate_id!r}" if aggregate_id else ""
        super().__init__(f"version conflict{where}: expected version {expected}, got {actual}")
        self.expected = expected
        self.actual = actual
        self.aggregate_id = aggregate_id


class EventSequenceError(DomainError):
    """An event cannot follow the current state for a reason other than its version.

    Examples: a stream that does not start with ``user.created``, a second
    ``user.created``, or an event addressed to another aggregate.
    """


class UnknownEventType(DomainError):
    """The event type string is not one this domain knows."""

    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type
