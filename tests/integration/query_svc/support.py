"""Checks shared by the query integration tests: table dumps and store comparisons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import func, select

from query_svc.db import LIVE, Database, read_checkpoint
from query_svc.source import SourceItem, StoredEvent
from tests.integration.query_svc.feeder import Feeder


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the live tables, in a fixed order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as conn:
        for table in LIVE.all:
            order = list(table.primary_key.columns)
            rows = (await conn.execute(select(table).order_by(*order))).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


async def assert_matches_store(
    db: Database, feeder: Feeder, *, head: int | None = None, others: int = 0
) -> None:
    """The read model reflects exactly the events the feeder appended, once each.

    ``others`` users written by someone else (command_svc's admin bootstrap)
    may exist beside them; ``head`` is then the store's last position.
    """
    users, auth, logins = LIVE.users, LIVE.auth, LIVE.logins
    async with db.read() as conn:
        assert await read_checkpoint(conn, LIVE) == (feeder.head if head is None else head)
        user_rows = {r.id: r for r in (await conn.execute(select(users))).all()}
        auth_rows = {r.user_id: r for r in (await conn.execute(select(auth))).all()}
        login_counts: dict[str, int] = dict(
            (
                await conn.execute(
                    select(logins.c.user_id, func.count()).group_by(logins.c.user_id)
                )
            ).all()
        )
    assert set(feeder.states) <= set(user_rows)
    assert len(user_rows) == len(auth_rows) == len(feeder.states) + others
    for uid, state in feeder.states.items():
        row, a = user_rows[uid], auth_rows[uid]
        expected = (state.email, state.role, state.status.value, state.version, state.login_count)
        assert (row.email, row.role, row.status, row.version, row.login_count) == expected
        assert (a.email, a.status, a.version, a.password_hash) == (
            state.email,
            state.status.value,
            state.version,
            state.password_hash,
        )
        assert login_counts.get(uid, 0) == state.login_count
        assert (row.deactivated_at is not None) == (state.deactivated_at is not None)
        assert (row.last_login_at is not None) == (state.last_login_at is not None)
        assert row.created_at <= row.updated_at


class ListSource:
    """An EventSource over a fixed list of events (a stand-in for an unreliable feed).

    ``replay_all`` ignores ``from_position`` (an at-least-once feed that
    redelivers everything on each connection); ``end`` makes each
    connection end after the list instead of staying open.
    """

    def __init__(
        self, events: Sequence[StoredEvent], *, replay_all: bool = False, end: bool = False
    ) -> None:
        self.items = list(events)
        self.replay_all = replay_all
        self.end = end
        self.connections: list[int] = []
        self.reconnected = asyncio.Event()

    async def events(self, *, from_position: int) -> AsyncIterator[SourceItem]:
        self.connections.append(from_position)
        if len(self.connections) > 1:
            self.reconnected.set()
        for item in self.items:
            if self.replay_all or item.position > from_position:
                yield item
        if not self.end:
            await asyncio.Event().wait()

    async def head_position(self) -> int:
        return max((e.position for e in self.items), default=0)
