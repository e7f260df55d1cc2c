"""Which sessions an event ends: the rule every service's token check follows.

A user's tokens carry the credential version they were issued under
(``UserState.credential_version`` at login) and their session id. An event
ends sessions in one of two ways:

- every session of the user (password reset, deactivation, "log out
  everywhere"; a password change ends every session *but the one that made
  it*): tokens issued under a credential version below the event's stream
  version are revoked; the event sets the state's ``credential_version`` to
  that version, so later logins are not;
- one session (``user.session.revoked``): tokens of that session id are revoked.

Why a password change keeps its own session: the caller has just proved the
old password, which is what a login proves; ending the session that did so
would only force a second login (OWASP ASVS 3.3.3 asks to end the *other*
sessions). Every session ends when the password is reset (by an admin, or
with a mailed token), on deactivation and on "log out everywhere".

:class:`CredentialEpoch` is the one implementation of "is a token of this
session, issued under this credential version, still valid": the token
check of every service (``service_kit.revocation``) and the refresh of a
session (query_svc) both use it.

Reactivation ends nothing (the deactivation already did). Erasure ends
every session.
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
    UserErased,
)

__all__ = [
    "NO_EPOCH",
    "SESSION_ENDING_TYPES",
    "CredentialEpoch",
    "SessionsEnded",
    "sessions_ended",
]

_ALL_REASONS: Final[dict[str, str]] = {
    PasswordChanged.EVENT_TYPE: "the password was changed",
    PasswordReset.EVENT_TYPE: "the password was reset",
    UserDeactivated.EVENT_TYPE: "the account was deactivated",
    SessionsRevoked.EVENT_TYPE: "every session was ended",
    UserErased.EVENT_TYPE: "the account's personal data was erased",
}

SESSION_ENDING_TYPES: Final[tuple[str, ...]] = (*_ALL_REASONS, SessionRevoked.EVENT_TYPE)
"""Wire names of the events :func:`sessions_ended` answers for (a subscription filter)."""


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """Sessions one event ended: every one of ``user_id`` (``session_id == ""``), or one.

    ``version`` is the event's stream version; ``reason`` says why in words
    a user may read. When every session ended, ``kept_session_id`` names the
    one that did not ("" if none).
    """

    user_id: str
    version: int
    session_id: str
    reason: str
    kept_session_id: str = ""


def sessions_ended(event: DomainEvent) -> SessionsEnded | None:
    """The sessions ``event`` ends, or None if it ends none."""
    if isinstance(event, SessionRevoked):
        reason = f"the session was ended ({event.reason})" if event.reason else "the session ended"
        return SessionsEnded(event.aggregate_id, event.version, event.session_id, reason)
    every = _ALL_REASONS.get(event.EVENT_TYPE)
    if every is None:
        return None
    kept = event.kept_session_id if isinstance(event, PasswordChanged) else ""
    return SessionsEnded(event.aggregate_id, event.version, "", every, kept)


@dataclass(frozen=True, slots=True)
class CredentialEpoch:
    """What a user's tokens must carry after the events that ended all their sessions.

    A token of session ``sid`` issued under credential version ``cv`` is
    valid iff ``cv >= version``, or ``sid`` is the kept session and
    ``cv >= kept_floor`` (the kept session's tokens were valid before the
    change that kept it, whatever their ``cv``, as long as they were valid
    under the epoch before it: its floor).

    Invariants: ``kept_floor <= version``; ``kept_floor == 0`` when no session
    is kept.
    """

    version: int = 0
    kept_session_id: str = ""
    kept_floor: int = 0

    def allows(self, session_id: str, credential_version: int) -> bool:
        """Whether a token of this session and credential version is still valid."""
        if credential_version >= self.version:
            return True
        return (
            bool(session_id)
            and session_id == self.kept_session_id
            and (credential_version >= self.kept_floor)
        )

    def after(self, ended: SessionsEnded) -> CredentialEpoch:
        """The epoch once ``ended`` (an event ending every session) is applied.

        Several changes in a row from one session keep that session's first
        floor; any other event moves the floor to the epoch it replaces.
        """
        if ended.session_id or ended.version < self.version:
            return self  # one session only, or an older event: no new epoch
        if not ended.kept_session_id:
            return CredentialEpoch(ended.version)
        same = ended.kept_session_id == self.kept_session_id
        floor = self.kept_floor if same else self.version
        return CredentialEpoch(ended.version, ended.kept_session_id, floor)


NO_EPOCH: Final = CredentialEpoch()
"""A user whose sessions no event ended (every token of theirs is valid)."""
