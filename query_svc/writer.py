"""Writing a batch of events and the checkpoint in one transaction (exactly once).

:func:`write_batch` runs inside the caller's transaction: it loads the rows
the batch touches, folds the events over them (:mod:`query_svc.projection`),
writes the final rows, and moves the checkpoint from ``expected`` to the
batch's last position with a compare-and-set. If the checkpoint is not at
``expected`` (another projector moved it) it raises :class:`CheckpointMoved`
and the caller rolls back: rows and checkpoint commit together or not at all,
so an event is reflected exactly once however often it is delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from query_svc.db import CHECKPOINT_NAME, Tables
from query_svc.projection import (
    ERASED,
    BatchChanges,
    ProjectedUser,
    ProjectionError,
    project_batch,
    touched_ids,
)
from query_svc.session_tables import SESSION_TABLES
from query_svc.source import SourceItem, StoredEvent

# Bound parameters per IN list; well under SQLite's and asyncpg's limits.
_CHUNK: Final = 500


class CheckpointMoved(Exception):
    """The stored checkpoint is not where this writer expected it."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"checkpoint is no longer at {expected}; another projector moved it")
        self.expected = expected


def new_events(
    items: Iterable[SourceItem], *, after: int
) -> tuple[list[StoredEvent], ProjectionError | None]:
    """The events of ``items`` that follow ``after`` without a gap, and the gap if any.

    Checkpoints and events at or below ``after`` (redeliveries) are dropped.
    At a gap the list stops, and the error says where: the caller applies
    what comes before it and then raises, because the missing events must
    not be skipped.
    """
    events: list[StoredEvent] = []
    last = after
    for item in items:
        if not isinstance(item, StoredEvent) or item.position <= last:
            continue
        if item.position != last + 1:
            return events, ProjectionError(
                f"gap in the event source: position {item.position} after {last}"
            )
        events.append(item)
        last = item.position
    return events, None


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


async def load_users(
    conn: AsyncConnection, tables: Tables, ids: Sequence[str]
) -> dict[str, ProjectedUser]:
    """The current rows of the users in ``ids`` that exist."""
    users, auth = tables.users, tables.auth
    query = select(
        users,
        auth.c.password_hash,
        auth.c.credential_version,
        auth.c.kept_session_id,
        auth.c.kept_floor,
    ).join(auth, auth.c.user_id == users.c.id)
    found: dict[str, ProjectedUser] = {}
    for chunk in _chunks(ids):
        result = await conn.execute(query.where(users.c.id.in_(chunk)))
        for row in result.mappings():
            found[row["id"]] = ProjectedUser(
                id=row["id"],
                email=row["email"],
                role=row["role"],
                status=row["status"],
                version=row["version"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                last_login_at=row["last_login_at"],
                login_count=row["login_count"],
                deactivated_at=row["deactivated_at"],
                email_verified=bool(row["email_verified"]),
                credential_version=row["credential_version"],
                kept_session_id=row["kept_session_id"],
                kept_floor=row["kept_floor"],
                password_hash=row["password_hash"],
            )
    return found


def _update_params(users: Mapping[str, ProjectedUser], *, auth: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for user in users.values():
        row = user.auth_row() if auth else user.users_row()
        row.pop("user_id" if auth else "id")
        row["b_id"] = user.id
        rows.append(row)
    return rows


async def write_changes(conn: AsyncConnection, tables: Tables, changes: BatchChanges) -> None:
    """Writes the rows of ``changes`` (no checkpoint)."""
    users, auth, logins = tables.users, tables.auth, tables.logins
    if changes.email_moved:
        # auth_projections.email is UNIQUE and checked row by row: if A moves
        # x->y and B y->x in one batch, whichever is written first collides.
        # Parking the movers on a placeholder (no '@', so never a real
        # address) first makes the final rows, which are unique, always fit.
        await conn.execute(
            auth.update().where(auth.c.user_id == bindparam("b_id")),
            [{"b_id": uid, "email": f"~{uid}"} for uid in changes.email_moved],
        )
    if changes.updated:
        await conn.execute(
            users.update().where(users.c.id == bindparam("b_id")),
            _update_params(changes.updated, auth=False),
        )
        await conn.execute(
            auth.update().where(auth.c.user_id == bindparam("b_id")),
            _update_params(changes.updated, auth=True),
        )
    if changes.inserted:
        await conn.execute(users.insert(), [u.users_row() for u in changes.inserted.values()])
        await conn.execute(auth.insert(), [u.auth_row() for u in changes.inserted.values()])
    if changes.logins:
        await conn.execute(logins.insert(), [login.row() for login in changes.logins])
    if changes.erased:
        await erase_personal_rows(conn, tables, sorted(changes.erased))


async def erase_personal_rows(conn: AsyncConnection, tables: Tables, user_ids: list[str]) -> None:
    """Blanks the personal columns the projection rows of erased users still hold
    beyond ``users``/``auth_projections`` (written by :func:`write_changes`): the
    client address of every login and of every session."""
    logins = tables.logins
    await conn.execute(
        logins.update().where(logins.c.user_id.in_(user_ids)).values(client_address=ERASED)
    )
    sessions = SESSION_TABLES.sessions
    await conn.execute(
        sessions.update().where(sessions.c.user_id.in_(user_ids)).values(client_address=ERASED)
    )


async def move_checkpoint(
    conn: AsyncConnection, tables: Tables, *, expected: int, position: int
) -> None:
    """Compare-and-set of the checkpoint from ``expected`` to ``position``."""
    cp = tables.checkpoints
    result = await conn.execute(
        cp.update()
        .where(cp.c.name == CHECKPOINT_NAME, cp.c.position == expected)
        .values(position=position)
    )
    if result.rowcount != 1:
        raise CheckpointMoved(expected)


async def write_batch(
    conn: AsyncConnection,
    tables: Tables,
    events: Sequence[StoredEvent],
    *,
    expected: int,
    position: int,
) -> BatchChanges:
    """Applies ``events`` and moves the checkpoint ``expected`` -> ``position``.

    ``events`` are in position order, all above ``expected`` and at most
    ``position``. Runs in the caller's transaction.
    """
    existing = await load_users(conn, tables, touched_ids(events))
    changes = project_batch(events, existing)
    await write_changes(conn, tables, changes)
    await move_checkpoint(conn, tables, expected=expected, position=position)
    return changes
