"""Which sessions an event ends: the rule every service's token check follows.

A user's tokens carry the credential version they were issued under
(``UserState.credential_version`` at login) and their session id. An event
ends sessions in one of two ways:

- every session of the user (password changed or reset, deactivation,
  "log out everywhere"): tokens issued under a credential version below the
  event's stream version are revoked; the event sets the state's
  ``credential_version`` to that version, so later logins are not;
- one session (``user.session.revoked``): tokens of that session id are revoked.

Reactivation ends nothing (the deactivation already did). Erasure, when it
exists, must join :data:`SESSION_ENDING_TYPES` and end every session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from domain.events import (
    DomainEvent,
    PasswordChanged,
    PasswordReset,
    SessionRevoked,
    SessionsRevoked,
    UserDeactivated,
)

__all__ = ["SESSION_ENDING_TYPES", "SessionsEnded", "sessions_ended"]

_ALL_REASONS: Final[dict[str, str]] = {
    PasswordChanged.EVENT_TYPE: "the password was changed",
    PasswordReset.EVENT_TYPE: "the password was reset",
    UserDeactivated.EVENT_TYPE: "the account was deactivated",
    SessionsRevoked.EVENT_TYPE: "every session was ended",
}

SESSION_ENDING_TYPES: Final[tuple[str, ...]] = (*_ALL_REASONS, SessionRevoked.EVENT_TYPE)
"""Wire names of the events :func:`sessions_ended` answers for (a subscription filter)."""


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """Sessions one event ended: every one of ``user_id`` (``session_id == ""``), or one.

    ``version`` is the event's stream version; ``reason`` says why in words
    a user may read.
    """

    user_id: str
    version: int
    session_id: str
    reason: str


def sessions_ended(event: DomainEvent) -> SessionsEnded | None:
    """The sessions ``event`` ends, or None if it ends none."""
    if isinstance(event, SessionRevoked):
        reason = f"the session was ended ({event.reason})" if event.reason else "the session ended"
        return SessionsEnded(event.aggregate_id, event.version, event.session_id, reason)
    every = _ALL_REASONS.get(event.EVENT_TYPE)
    if every is None:
        return None
    return SessionsEnded(event.aggregate_id, event.version, "", every)
