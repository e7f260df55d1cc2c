"""Sessions and rotating refresh tokens, in the read model's database.

A login opens a session (a random id, the ``sid`` of its access tokens)
and gets a refresh token. A refresh token is 32 random bytes; only its
SHA-256 is stored. Trading it (:meth:`SessionStore.rotate`) marks it used
and issues the next one of the same session, in one transaction.

Invariants:
- a refresh token is traded at most once: the "mark used" update is
  conditional on it being unused, so of two concurrent trades one wins and
  the other is treated as reuse;
- presenting a used refresh token is reuse (it was stolen, or replayed):
  the whole session is revoked (:class:`Reused`), and its holder must
  publish that (``user.session.revoked``) so access tokens die too;
- a revoked or expired session trades nothing;
- tokens never leave this module in clear except to the caller that asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, select

from query_svc.db import Database
from query_svc.session_tables import SESSION_TABLES, SessionTables
from service_kit.timeconv import utcnow

__all__ = [
    "Invalid",
    "Opened",
    "Reused",
    "Rotated",
    "SessionRow",
    "SessionStore",
]

MAX_LISTED: Final = 100
_REASON_LENGTH: Final = 500


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRow:
    """A ``sessions`` row."""

    id: str
    user_id: str
    cv: int
    created_at: datetime
    last_refreshed_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None
    revoked_reason: str
    client_address: str

    def ended(self, now: datetime) -> bool:
        return self.revoked_at is not None or now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Opened:
    """A new session and its first refresh token."""

    session: SessionRow
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Rotated:
    """A refresh token traded: the session and its next refresh token."""

    session: SessionRow
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Reused:
    """A used refresh token came back: the session is now revoked."""

    session: SessionRow
    newly_revoked: bool


@dataclass(frozen=True, slots=True)
class Invalid:
    """Unknown refresh token, or its session ended or expired."""

    reason: str


class SessionStore:
    """Sessions and refresh tokens (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        refresh_ttl: timedelta,
        clock: Callable[[], datetime] = utcnow,
        tables: SessionTables = SESSION_TABLES,
    ) -> None:
        self._db = database
        self.refresh_ttl = refresh_ttl
        self._clock = clock
        self._t = tables

    async def open(self, *, user_id: str, cv: int, client_address: str) -> Opened:
        """A new session of ``user_id`` whose tokens carry credential version ``cv``."""
        now = self._clock()
        session = SessionRow(
            id=str(uuid.uuid4()),
            user_id=user_id,
            cv=cv,
            created_at=now,
            last_refreshed_at=None,
            expires_at=now + self.refresh_ttl,
            revoked_at=None,
            revoked_reason="",
            client_address=client_address[:255],
        )
        token = _new_token()
        async with self._db.write() as conn:
            await conn.execute(
                self._t.sessions.insert().values(
                    id=session.id,
                    user_id=session.user_id,
                    cv=session.cv,
                    created_at=session.created_at,
                    last_refreshed_at=None,
                    expires_at=session.expires_at,
                    revoked_at=None,
                    revoked_reason="",
                    client_address=session.client_address,
                )
            )
            await conn.execute(
                self._t.refresh_tokens.insert().values(
                    token_hash=_digest(token), session_id=session.id, issued_at=now, used_at=None
                )
            )
        return Opened(session, token)

    async def rotate(self, refresh_token: str) -> Rotated | Reused | Invalid:
        """Trades a refresh token for the next one (see the module docstring)."""
        now = self._clock()
        digest = _digest(refresh_token)
        tokens, sessions = self._t.refresh_tokens, self._t.sessions
        async with self._db.write() as conn:
            found = (
                (
                    await conn.execute(
                        select(tokens.c.used_at, sessions)
                        .join(sessions, sessions.c.id == tokens.c.session_id)
                        .where(tokens.c.token_hash == digest)
                    )
                )
                .mappings()
                .first()
            )
            if found is None:
                return Invalid("invalid refresh token")
            session = _session(found)
            # An ended session first: its used token coming back is no theft
            # to react to (nothing is left to revoke), and the caller should
            # hear why it must log in again.
            if session.ended(now):
                return Invalid("the session has ended; log in again")
            if found["used_at"] is not None:
                return await self._reused(conn, session, now)
            marked = await conn.execute(
                tokens.update()
                .where(and_(tokens.c.token_hash == digest, tokens.c.used_at.is_(None)))
                .values(used_at=now)
            )
            if marked.rowcount != 1:  # a concurrent trade of the same token won
                return await self._reused(conn, session, now)
            token = _new_token()
            await conn.execute(
                tokens.insert().values(
                    token_hash=_digest(token), session_id=session.id, issued_at=now, used_at=None
                )
            )
            await conn.execute(
                sessions.update().where(sessions.c.id == session.id).values(last_refreshed_at=now)
            )
        return Rotated(_replace_refreshed(session, now), token)

    async def _reused(self, conn: Any, session: SessionRow, now: datetime) -> Reused:
        newly = session.revoked_at is None
        if newly:
            await self._mark(conn, session.id, "refresh token reused", now)
        return Reused(session, newly)

    async def _mark(self, conn: Any, session_id: str, reason: str, now: datetime) -> int:
        sessions = self._t.sessions
        result = await conn.execute(
            sessions.update()
            .where(and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))
            .values(revoked_at=now, revoked_reason=reason[:_REASON_LENGTH])
        )
        return int(result.rowcount)

    async def revoke(self, session_id: str, reason: str) -> int:
        """Ends one session; 1 if it was open, else 0."""
        async with self._db.write() as conn:
            return await self._mark(conn, session_id, reason, self._clock())

    async def revoke_all(self, user_id: str, reason: str) -> int:
        """Ends every open session of a user; how many were open."""
        sessions = self._t.sessions
        async with self._db.write() as conn:
            result = await conn.execute(
                sessions.update()
                .where(and_(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)))
                .values(revoked_at=self._clock(), revoked_reason=reason[:_REASON_LENGTH])
            )
            return int(result.rowcount)

    async def get(self, session_id: str) -> SessionRow | None:
        sessions = self._t.sessions
        async with self._db.read() as conn:
            row = (
                (await conn.execute(select(sessions).where(sessions.c.id == session_id)))
                .mappings()
                .first()
            )
        return None if row is None else _session(row)

    async def list(self, user_id: str) -> list[SessionRow]:
        """A user's sessions, newest first (at most :data:`MAX_LISTED`)."""
        sessions = self._t.sessions
        query = (
            select(sessions)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
            .limit(MAX_LISTED)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_session(row) for row in rows]


def _session(row: Any) -> SessionRow:
    return SessionRow(
        id=row["id"],
        user_id=row["user_id"],
        cv=row["cv"],
        created_at=row["created_at"],
        last_refreshed_at=row["last_refreshed_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
        client_address=row["client_address"],
    )


def _replace_refreshed(session: SessionRow, now: datetime) -> SessionRow:
    return dataclasses.replace(session, last_refreshed_at=now)
