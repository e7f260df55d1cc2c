"""Queries of the read model: users, login history, and the login lookup.

Invariants:
- :class:`UserView` and :class:`LoginView` never carry a password hash; only
  :meth:`ReadModel.auth_by_email` reads one, for the login check.
- Lists are keyset-paginated in a total order (ties broken by id), so a page
  never repeats or skips a row that existed when the first page was read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, or_, select

import domain
from query_svc.db import LIVE, Database, Tables
from query_svc.page_tokens import LoginsCursor, UsersCursor


@dataclass(frozen=True, slots=True, kw_only=True)
class UserView:
    """A ``users`` row."""

    id: str
    email: str
    role: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    login_count: int
    deactivated_at: datetime | None
    email_verified: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginView:
    """A ``login_histories`` row; ``id`` is the login event's global position."""

    id: int
    login_at: datetime
    client_address: str
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRecord:
    """An ``auth_projections`` row: what a login is checked against."""

    user_id: str
    email: str
    role: str
    status: str
    credential_version: int
    kept_session_id: str = ""
    kept_floor: int = 0
    password_hash: str = field(repr=False)

    @property
    def epoch(self) -> domain.CredentialEpoch:
        """Which of the user's tokens are still valid (see ``domain.sessions``)."""
        return domain.CredentialEpoch(
            self.credential_version, self.kept_session_id, self.kept_floor
        )


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Rows of one page, and whether more follow the last one."""

    rows: list[T]
    more: bool


class ReadModel:
    """Reads of the live tables."""

    def __init__(self, database: Database, tables: Tables = LIVE) -> None:
        self._db = database
        self._t = tables

    async def get_user(self, user_id: str) -> UserView | None:
        users = self._t.users
        async with self._db.read() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
            )
        return None if row is None else UserView(**row)

    async def list_users(
        self, *, limit: int, after: UsersCursor | None, status: str | None
    ) -> Page[UserView]:
        """Users ordered by (created_at, id), after ``after``, optionally of one status."""
        users = self._t.users
        query = select(users).order_by(users.c.created_at, users.c.id).limit(limit + 1)
        if status is not None:
            query = query.where(users.c.status == status)
        if after is not None:
            query = query.where(
                or_(
                    users.c.created_at > after.created_at,
                    and_(users.c.created_at == after.created_at, users.c.id > after.id),
                )
            )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        views = [UserView(**row) for row in rows[:limit]]
        return Page(views, len(rows) > limit)

    async def login_history(
        self, *, user_id: str, limit: int, after: LoginsCursor | None
    ) -> Page[LoginView]:
        """A user's logins, newest first (ties: higher position first)."""
        logins = self._t.logins
        query = (
            select(logins.c.id, logins.c.login_at, logins.c.client_address, logins.c.version)
            .where(logins.c.user_id == user_id)
            .order_by(logins.c.login_at.desc(), logins.c.id.desc())
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(
                or_(
                    logins.c.login_at < after.login_at,
                    and_(logins.c.login_at == after.login_at, logins.c.id < after.id),
                )
            )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        views = [LoginView(**row) for row in rows[:limit]]
        return Page(views, len(rows) > limit)

    def _auth_query(self) -> Any:
        auth = self._t.auth
        return select(
            auth.c.user_id,
            auth.c.email,
            auth.c.role,
            auth.c.status,
            auth.c.credential_version,
            auth.c.kept_session_id,
            auth.c.kept_floor,
            auth.c.password_hash,
        )

    async def auth_by_email(self, email: str) -> AuthRecord | None:
        """The login record of a normalised email address, if any."""
        query = self._auth_query().where(self._t.auth.c.email == email)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else AuthRecord(**row)

    async def auth_by_id(self, user_id: str) -> AuthRecord | None:
        """The login record of a user id, if any (for refreshing a session)."""
        query = self._auth_query().where(self._t.auth.c.user_id == user_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else AuthRecord(**row)
