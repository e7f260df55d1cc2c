"""The user aggregate's state, as folded from its events.

Invariants of a ``UserState`` produced by :func:`domain.evolve.fold`:
- ``version`` equals the number of events applied (the last event's version).
- ``created_at`` is the first event's ``occurred_at`` and ``updated_at`` the
  last applied event's (logins included). Clocks are not trusted to be
  monotonic, so no ordering between event times is enforced.
- ``password_version`` is 1 at creation and grows by one per password change
  or reset; ``password_changed_at`` is ``None`` until the first one.
- ``status`` is ``ERASED`` after ``user.erased`` (final; ``deactivated_at``
  keeps its value). Otherwise it is ``DEACTIVATED`` iff ``deactivated_at`` is set; a reactivation
  clears both and sets ``reactivated_at``.
- ``login_count`` counts ``user.login.recorded`` events; ``last_login_at`` is
  the latest one's time.
- ``credential_version`` is the stream version of the latest event that ended
  every session of the user (password changed or reset, deactivated, "log out
  everywhere"); 0 if none. A token issued under a lower value is revoked.
- ``email_verified`` is True iff a ``user.email.verified`` event came after the
  event that set the current email (``email_set_version``); an email change
  makes it False again.
- ``reset_token_hash`` / ``reset_expires_at`` describe the pending password
  reset (both empty when none): set by a request, cleared by any password
  change or reset.

Internal fields (``password_hash``, ``email_set_version``, the pending reset)
are here only for the command side (the service verifies passwords and
one-time tokens against them). Secrets are hidden from ``repr``, and all of
them are excluded from :func:`public_fields`, which every read path (time
travel, compare, snapshots shown to users) must use.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = ["INTERNAL_FIELDS", "PUBLIC_FIELDS", "UserState", "UserStatus", "public_fields"]


class UserStatus(StrEnum):
    """Lifecycle status. Only an admin can bring a ``DEACTIVATED`` user back."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    ERASED = "erased"
    """Personal data erased: the state's email reads "[ERASED]"; final."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserState:
    """One user's current state. See the module docstring for invariants."""

    user_id: str
    email: str
    role: str
    status: UserStatus
    version: int
    created_at: datetime
    updated_at: datetime
    password_hash: str = field(repr=False)
    password_version: int = 1
    password_changed_at: datetime | None = None
    email_changed_at: datetime | None = None
    deactivated_at: datetime | None = None
    deactivation_reason: str = ""
    last_login_at: datetime | None = None
    login_count: int = 0
    email_verified: bool = False
    email_verified_at: datetime | None = None
    reactivated_at: datetime | None = None
    credential_version: int = 0
    email_set_version: int = 1
    reset_token_hash: str = field(default="", repr=False)
    reset_expires_at: datetime | None = None

    @property
    def is_active(self) -> bool:
        """True unless the user has been deactivated."""
        return self.status is UserStatus.ACTIVE

    def public_fields(self) -> dict[str, object]:
        """Every field except the internal ones; see :func:`public_fields`."""
        return public_fields(self)


INTERNAL_FIELDS: Final = frozenset(
    {"password_hash", "email_set_version", "reset_token_hash", "reset_expires_at"}
)
"""Fields no read outside the command side may show (secrets and their bookkeeping)."""

PUBLIC_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(UserState) if f.name not in INTERNAL_FIELDS
)
"""Names of the fields a read may expose, in declaration order."""


def public_fields(state: UserState) -> dict[str, object]:
    """Return every field of ``state`` except the internal ones, in declaration order.

    Values are the raw Python values (``datetime``, ``UserStatus``, ...); use
    :mod:`domain.diff` or :mod:`domain.serialization` for text.
    """
    return {name: getattr(state, name) for name in PUBLIC_FIELDS}
