"""Rate-limit state in a SQL database, shared by every instance of a service.

query_svc keeps its login and reset budgets in the read model's database;
command_svc keeps its registration and old-password budgets in the same
PostgreSQL on the production stack (:mod:`command_svc.limits_database`).

One table, ``limit_events``: a row per counted attempt, ``(scope, subject,
address, at, outcome)``. ``at`` is wall-clock seconds since the epoch (every
instance must have a synchronised clock, as for token expiry). A budget is a
count of rows of a scope within a sliding window; it survives restarts and
holds across instances because every instance counts the same rows.

Invariants:
- Counting and adding a row happen in one write transaction that holds a
  lock on the keys it counts (:func:`lock_keys`): SQLite's writer begins
  IMMEDIATE (one writer at a time), PostgreSQL takes transaction-scoped
  advisory locks. Two instances can therefore never both see "one left"
  and both take it.
- Rows older than the longest window are deleted as keys are touched, and
  now and then for every key (:func:`purge`), so the table stays bounded by
  the traffic of one window.

No library fits: ``limits`` (the best-kept Python rate-limit library) has
Redis/Memcached/MongoDB storage but no SQL storage, and no way to reserve an
attempt now and settle its outcome later, which the login needs.

:class:`SqlRequestLimiter` is the plain form: every request counts
(password reset mails, registrations, old-password checks).

The database is anything with a ``write()`` transaction
(:class:`WriteTransactions`): query_svc's guarded ``Database``, or
command_svc's ``LimitsDatabase``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from service_kit.refusals import refused

__all__ = [
    "LIMIT_EVENTS",
    "LIMIT_METADATA",
    "KeyedLocks",
    "SqlRequestLimiter",
    "WriteTransactions",
    "count_since",
    "keyed_pseudonyms",
    "lock_keys",
    "oldest_since",
    "purge",
    "wait_seconds",
]

LIMIT_METADATA: Final = MetaData()
LIMIT_EVENTS: Final = Table(
    "limit_events",
    LIMIT_METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("scope", String(32), nullable=False),
    Column("subject", String(330), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("outcome", String(8), nullable=False),
)
Index("ix_limit_events_subject", LIMIT_EVENTS.c.scope, LIMIT_EVENTS.c.subject, LIMIT_EVENTS.c.at)
Index("ix_limit_events_address", LIMIT_EVENTS.c.scope, LIMIT_EVENTS.c.address, LIMIT_EVENTS.c.at)
Index("ix_limit_events_at", LIMIT_EVENTS.c.at)


class WriteTransactions(Protocol):
    """A database that hands out write transactions (committed on exit)."""

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


# One write in this many also purges every expired row, whatever its key.
_PURGE_ONE_IN: Final = 200


class KeyedLocks:
    """In-process locks per key, taken before a transaction that locks the same keys.

    Without them, a burst on one key opens one transaction per request, each
    holding a pooled connection while it waits for the database lock: the
    pool runs dry and unrelated reads time out. With them, one transaction
    per key and instance waits in the database; the others wait here,
    holding nothing. A key's lock is dropped when nobody holds or awaits it.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(keys))  # one order for everyone: no deadlock
        for key in ordered:
            lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
            self._locks[key] = (lock, users + 1)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for key in ordered:
                    await stack.enter_async_context(self._locks[key][0])
                yield
        finally:
            for key in ordered:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


async def lock_keys(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """Serialises, across instances, the transactions that count these keys.

    On SQLite the IMMEDIATE write transaction already excludes every other
    writer. On PostgreSQL one advisory lock per key, taken in sorted order
    (no deadlock between two transactions locking overlapping keys), is
    released at commit.
    """
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": zlib.crc32(key.encode()) - 2**31},
        )


async def count_since(
    conn: AsyncConnection,
    *,
    scope: str,
    since: float,
    subject: str | None = None,
    address: str | None = None,
    outcomes: tuple[str, ...],
) -> int:
    """Rows of ``scope`` after ``since`` with one of ``outcomes`` (and the given keys)."""
    query = _where(
        select(func.count()),
        scope,
        since=since,
        subject=subject,
        address=address,
        outcomes=outcomes,
    )
    return int(await conn.scalar(query) or 0)


async def oldest_since(conn: AsyncConnection, *, scope: str, since: float, **keys: Any) -> float:
    """When the oldest row :func:`count_since` would count was written (``since``
    if there is none); ``keys``: the same ``subject``, ``address``, ``outcomes``."""
    at = await conn.scalar(_where(select(func.min(LIMIT_EVENTS.c.at)), scope, since=since, **keys))
    return float(at) if at is not None else since


def _where(
    query: Select[Any],
    scope: str,
    *,
    since: float,
    outcomes: tuple[str, ...],
    subject: str | None = None,
    address: str | None = None,
) -> Select[Any]:
    t = LIMIT_EVENTS.c
    q = query.where(t.scope == scope, t.at > since, t.outcome.in_(outcomes))
    if subject is not None:
        q = q.where(t.subject == subject)
    if address is not None:
        q = q.where(t.address == address)
    return q


async def purge(conn: AsyncConnection, *, scope: str, before: float, subject: str = "") -> None:
    """Deletes ``scope``'s rows older than ``before`` for ``subject``; now and then all of them."""
    t = LIMIT_EVENTS.c
    if random.randrange(_PURGE_ONE_IN) == 0:
        await conn.execute(delete(LIMIT_EVENTS).where(t.scope == scope, t.at < before))
    elif subject:
        await conn.execute(
            delete(LIMIT_EVENTS).where(t.scope == scope, t.subject == subject, t.at < before)
        )


def keyed_pseudonyms(secret: bytes) -> Callable[[str], str]:
    """What the limits store instead of an email address or a client address: a keyed
    hash (HMAC-SHA256, 32 hex digits), equal for equal values and shared by every
    instance that holds ``secret``, so the bookings hold no personal data (nothing to
    erase) and cannot be reversed by trying every IPv4 address. "" stays ""."""
    key = hmac.new(secret, b"cqrs limits v1", hashlib.sha256).digest()

    def pseudonym(value: str) -> str:
        if not value:
            return ""
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]

    return pseudonym


def _same(value: str) -> str:
    return value


def wait_seconds(oldest: float, window: float, now: float) -> int:
    """Whole seconds until a row written at ``oldest`` leaves the window (at least 1)."""
    return max(1, math.ceil(oldest + window - now))


class SqlRequestLimiter:
    """At most ``limit`` requests per key within ``window`` seconds, across instances.

    Implements :class:`~service_kit.request_limits.RequestLimiter`: a request
    within budget is counted at once; a refused one is not (it is reported
    to :func:`~service_kit.refusals.refused` under ``scope``).
    """

    def __init__(
        self,
        database: WriteTransactions,
        *,
        scope: str,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
        pseudonym: Callable[[str], str] = _same,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit and window must be positive")
        self._db, self._scope = database, scope
        self._limit, self._window = limit, window
        self._clock, self._pseudonym = clock, pseudonym
        self._locks = KeyedLocks()

    async def acquire(self, key: str) -> int:
        key = self._pseudonym(key)
        async with self._locks.hold([key]):
            return await self._acquire(key)

    async def _acquire(self, key: str) -> int:
        now = self._clock()
        since = now - self._window
        async with self._db.write() as conn:
            await lock_keys(conn, [f"{self._scope}:{key}"])
            await purge(conn, scope=self._scope, before=since, subject=key)
            counted = ("ok",)
            used = await count_since(
                conn, scope=self._scope, since=since, subject=key, outcomes=counted
            )
            if used >= self._limit:
                oldest = await oldest_since(
                    conn, scope=self._scope, since=since, subject=key, outcomes=counted
                )
                return refused(self._scope, wait_seconds(oldest, self._window, now))
            await conn.execute(
                LIMIT_EVENTS.insert().values(
                    scope=self._scope, subject=key, address="", at=now, outcome="ok"
                )
            )
        return 0

    async def reset(self, key: str) -> None:
        """Forgets every counted request of ``key`` (a right password clears its checks)."""
        key = self._pseudonym(key)
        t = LIMIT_EVENTS.c
        async with self._locks.hold([key]), self._db.write() as conn:
            await lock_keys(conn, [f"{self._scope}:{key}"])
            await conn.execute(delete(LIMIT_EVENTS).where(t.scope == self._scope, t.subject == key))
