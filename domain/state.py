"""The user aggregate's state, as folded from its events.

Invariants of a ``UserState`` produced by :func:`domain.evolve.fold`:
- ``version`` equals the number of events applied (the last event's version).
- ``created_at`` is the first event's ``occurred_at`` and ``updated_at`` the
  last applied event's (logins included). Clocks are not trusted to be
  monotonic, so no ordering between event times is enforced.
- ``password_version`` is 1 at creation and grows by one per password change;
  ``password_changed_at`` is ``None`` until the first change.
- ``status`` is ``DEACTIVATED`` iff ``deactivated_at`` is set.
- ``login_count`` counts ``user.login.recorded`` events; ``last_login_at`` is
  the latest one's time.

``password_hash`` is here only for the command side (``decide`` never reads
it; the service verifies passwords against it). It is hidden from ``repr``
and excluded from :func:`public_fields`, which every read path (time travel,
compare, snapshots shown to users) must use.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = ["PUBLIC_FIELDS", "UserState", "UserStatus", "public_fields"]


class UserStatus(StrEnum):
    """Lifecycle status. ``DEACTIVATED`` is terminal."""

    ACTIVE = "active"
    DEACTIVATED = "deactivated"


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

    @property
    def is_active(self) -> bool:
        """True unless the user has been deactivated."""
        return self.status is UserStatus.ACTIVE

    def public_fields(self) -> dict[str, object]:
        """Every field except ``password_hash``; see :func:`public_fields`."""
        return public_fields(self)


_SECRET_FIELDS: Final = frozenset({"password_hash"})

PUBLIC_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in fields(UserState) if f.name not in _SECRET_FIELDS
)
"""Names of the fields a read may expose, in declaration order."""


def public_fields(state: UserState) -> dict[str, object]:
    """Return every field of ``state`` except ``password_hash``, in declaration order.

    Values are the raw Python values (``datetime``, ``UserStatus``, ...); use
    :mod:`domain.diff` or :mod:`domain.serialization` for text.
    """
    return {name: getattr(state, name) for name in PUBLIC_FIELDS}
