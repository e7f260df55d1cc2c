"""Refreshing, ending and listing sessions: the rules around :mod:`query_svc.sessions`.

- Refresh: the refresh token is traded (rotation); then the session must
  still be good: the user active, no session-ending event since the login
  (the read model's credential version is not above the session's, and the
  revocation view does not revoke it). A session found dead is marked so.
  The new access token carries the session's id and credential version.
- Reuse of a refresh token revokes its whole session, in the database and
  by an event (``user.session.revoked``, reason "refresh token reused"), so
  every access token of the session is refused everywhere too.
- Logout appends the event first (then every service refuses the tokens),
  then marks the session(s) in the database.
- Every failed refresh is UNAUTHENTICATED with a reason that names no account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

import grpc

from query_svc.projection import ACTIVE
from query_svc.read_model import AuthRecord
from query_svc.sessions import Invalid, Reused, SessionRow, SessionStore
from service_kit.auth import Principal, TokenSigner
from service_kit.errors import ServiceError, invalid
from service_kit.revocation import NOT_READY, REVOKED_PREFIX, RevocationView
from service_kit.timeconv import utcnow

__all__ = ["Refreshed", "SessionService", "SessionStatus"]

log = logging.getLogger(__name__)

REUSED: Final = "refresh token reused"
LOGOUT: Final = "logout"
LOGOUT_ALL: Final = "logout everywhere"
_ENDED_LATER: Final = "ended by a later password change, reset, deactivation or logout everywhere"


class SessionRevoker(Protocol):
    """Appends session-ending events (command_svc's RevokeSessions)."""

    async def revoke_sessions(
        self,
        *,
        user_id: str,
        session_id: str = "",
        every: bool = False,
        reason: str,
        correlation_id: str = "",
    ) -> int: ...


class AuthReads(Protocol):
    async def auth_by_id(self, user_id: str) -> AuthRecord | None: ...


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A new access token, a new refresh token, and their lifetimes."""

    token: str
    expires_in: int
    session_id: str
    refresh_token: str = field(repr=False)
    refresh_expires_in: int


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """A session as listed: its row, status ("active", "revoked", "expired") and why."""

    session: SessionRow
    status: str
    reason: str


def _unauthenticated(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message)


class SessionService:
    """See the module docstring."""

    def __init__(
        self,
        *,
        sessions: SessionStore,
        auth: AuthReads,
        signer: TokenSigner,
        revoker: SessionRevoker,
        view: RevocationView | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._auth = auth
        self._signer = signer
        self._revoker = revoker
        self._view = view
        self._clock = clock

    def _ended_because(self, session: SessionRow, record: AuthRecord | None) -> str:
        """Why a session that is not marked revoked is nevertheless dead ("" if it is not)."""
        if record is None or record.status != ACTIVE:
            return "the account is not active"
        if not record.epoch.allows(session.id, session.cv):
            return _ENDED_LATER
        if self._view is not None:
            principal = Principal(record.user_id, record.email, record.role, session.id, session.cv)
            reason = self._view.revoked(principal)
            if reason == NOT_READY:
                raise ServiceError(grpc.StatusCode.UNAVAILABLE, reason)
            return reason.removeprefix(REVOKED_PREFIX)
        return ""

    async def refresh(self, refresh_token: str, *, correlation_id: str = "") -> Refreshed:
        if not refresh_token:
            raise invalid("refresh_token", "is required")
        outcome = await self._sessions.rotate(refresh_token)
        if isinstance(outcome, Invalid):
            raise _unauthenticated(outcome.reason)
        if isinstance(outcome, Reused):
            if outcome.newly_revoked:
                log.warning(
                    "refresh token reuse: session %s of user %s revoked",
                    outcome.session.id,
                    outcome.session.user_id,
                )
                await self._publish(outcome.session, REUSED, correlation_id)
            raise _unauthenticated("refresh token already used; the session is revoked")
        session = outcome.session
        record = await self._auth.auth_by_id(session.user_id)
        dead = self._ended_because(session, record)
        if dead or record is None:
            await self._sessions.revoke(session.id, dead)
            raise _unauthenticated("the session has ended; log in again")
        principal = Principal(record.user_id, record.email, record.role, session.id, session.cv)
        token, expires_in = self._signer.issue(principal, now=self._clock())
        remaining = int((session.expires_at - self._clock()).total_seconds())
        return Refreshed(
            token=token,
            expires_in=expires_in,
            session_id=session.id,
            refresh_token=outcome.refresh_token,
            refresh_expires_in=max(remaining, 0),
        )

    async def _publish(self, session: SessionRow, reason: str, correlation_id: str) -> None:
        """Appends the session's revocation event (its access tokens die everywhere)."""
        try:
            await self._revoker.revoke_sessions(
                user_id=session.user_id,
                session_id=session.id,
                reason=reason,
                correlation_id=correlation_id,
            )
        except grpc.aio.AioRpcError as exc:
            # The session is revoked here already; its access tokens die at expiry.
            log.error(
                "could not record the revocation of session %s: %s %s",
                session.id,
                exc.code().name,
                exc.details(),
            )

    async def logout(
        self, principal: Principal, *, every: bool, correlation_id: str = ""
    ) -> tuple[int, int]:
        """Ends the caller's session (or every one); (sessions ended, event position)."""
        if principal.is_service:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "a service has no session")
        if every:
            position = await self._revoker.revoke_sessions(
                user_id=principal.subject,
                every=True,
                reason=LOGOUT_ALL,
                correlation_id=correlation_id,
            )
            return await self._sessions.revoke_all(principal.subject, LOGOUT_ALL), position
        if not principal.session_id:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                'this token belongs to no session; send {"all": true} to end every session',
            )
        position = await self._revoker.revoke_sessions(
            user_id=principal.subject,
            session_id=principal.session_id,
            reason=LOGOUT,
            correlation_id=correlation_id,
        )
        return await self._sessions.revoke(principal.session_id, LOGOUT), position

    async def list(self, user_id: str) -> list[SessionStatus]:
        """A user's sessions, newest first, each with its status now."""
        now = self._clock()
        record = await self._auth.auth_by_id(user_id)
        listed = []
        for session in await self._sessions.list(user_id):
            if session.revoked_at is not None:
                listed.append(SessionStatus(session, "revoked", session.revoked_reason))
            elif now >= session.expires_at:
                listed.append(SessionStatus(session, "expired", ""))
            elif reason := self._ended_because(session, record):
                listed.append(SessionStatus(session, "revoked", reason))
            else:
                listed.append(SessionStatus(session, "active", ""))
        return listed
