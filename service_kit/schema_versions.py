"""Schema versions of the stores, and the ordered migrations that move a store forward.

Every store (the SQLite or ClickHouse event store, the SQLite or PostgreSQL
read model) records its version in a ``schema_migrations`` table: one row
per migration applied; the store's version is the highest. The same small
runner serves all of them, each through a :class:`SchemaAdapter` that knows
its store's SQL.

Invariants:

- Migrations of a store are numbered 1..N with no gap; migration ``k`` takes
  a store from version ``k - 1`` to ``k`` and its row is written only after
  it succeeded, so a failed run leaves the store at ``k - 1`` and the next
  run starts with ``k`` again. Version 1 is the baseline: the schema the
  project had before versions existed.
- A store that has the project's tables but no ``schema_migrations`` table
  was made by that earlier code: version 0 (legacy).
- A fresh, empty store is created directly at the code's version (the
  current DDL, then one row for the newest migration), never by replaying
  migrations: the current definitions are the truth, and a test compares a
  fresh store with one migrated from the baseline.
- Services never migrate: :func:`prepare` creates a fresh store or accepts a
  store exactly at the code's version, and refuses any other with
  :class:`SchemaMismatch` (one line naming the store and what to do).
  Only ``cqrs-admin migrate`` (:func:`migrate`) changes a schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, Protocol, TypeVar

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "SchemaAdapter",
    "SchemaMismatch",
    "SchemaReport",
    "check_sequence",
    "current_version",
    "migrate",
    "prepare",
]

MIGRATIONS_TABLE: Final = "schema_migrations"
"""The table, in every store, that lists the migrations applied to it."""


class SchemaMismatch(Exception):
    """The store's schema is not the version this code needs; the message is one line."""


class SchemaAdapter(Protocol):
    """One store's side of the runner."""

    @property
    def description(self) -> str:
        """What the store is and where, e.g. ``SQLite event store at data/events.sqlite3``."""
        ...

    async def found_version(self) -> int | None:
        """None for an empty store (none of the project's tables), else its version (0: legacy)."""
        ...

    async def create_current(self) -> None:
        """Creates the current schema in an empty store (without the version row)."""
        ...

    async def record(self, version: int, summary: str) -> None:
        """Records that migration ``version`` is applied (creating the version table if needed)."""
        ...


A = TypeVar("A", bound=SchemaAdapter)


@dataclass(frozen=True, slots=True)
class Migration(Generic[A]):
    """Migration ``version``: takes a store from ``version - 1`` to ``version``."""

    version: int
    summary: str
    apply: Callable[[A], Awaitable[None]]


@dataclass(slots=True)
class SchemaReport:
    """What :func:`prepare` or :func:`migrate` found and did."""

    description: str
    found: int | None  # None: the store was empty
    version: int  # the store's version now
    applied: list[int] = field(default_factory=list)

    def line(self) -> str:
        if self.found is None:
            return f"{self.description}: created at version {self.version}"
        if not self.applied:
            return f"{self.description}: at version {self.version}, nothing to do"
        steps = ", ".join(str(v) for v in self.applied)
        return (
            f"{self.description}: migrated from version {self.found} to {self.version} "
            f"(applied {steps})"
        )


def check_sequence(migrations: Sequence[Migration[A]]) -> None:
    """Raises ValueError unless the migrations are numbered 1..N in order."""
    numbers = [m.version for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations must be numbered 1..N in order, not {numbers}")


def current_version(migrations: Sequence[Migration[A]]) -> int:
    """The version this code's store has: its newest migration."""
    check_sequence(migrations)
    return len(migrations)


def _mismatch(description: str, found: int, current: int) -> SchemaMismatch:
    if found > current:
        return SchemaMismatch(
            f"{description} has schema version {found}, newer than this code's {current}: "
            "run the release that wrote it (or newer), or restore a backup made by this one"
        )
    return SchemaMismatch(
        f"{description} has schema version {found}, older than this code's {current}: "
        "stop the services and run `cqrs-admin migrate`"
    )


async def _create(adapter: A, migrations: Sequence[Migration[A]]) -> SchemaReport:
    current = current_version(migrations)
    await adapter.create_current()
    await adapter.record(current, migrations[-1].summary)
    return SchemaReport(adapter.description, None, current)


async def prepare(adapter: A, migrations: Sequence[Migration[A]]) -> SchemaReport:
    """What a service does at start: create an empty store, accept one at the code's
    version, refuse (SchemaMismatch) any other."""
    current = current_version(migrations)
    found = await adapter.found_version()
    if found is None:
        return await _create(adapter, migrations)
    if found != current:
        raise _mismatch(adapter.description, found, current)
    return SchemaReport(adapter.description, found, found)


async def migrate(adapter: A, migrations: Sequence[Migration[A]]) -> SchemaReport:
    """What ``cqrs-admin migrate`` does: apply every migration newer than the store,
    in order, recording each; an empty store is created at the code's version; a
    store newer than the code is refused (SchemaMismatch)."""
    current = current_version(migrations)
    found = await adapter.found_version()
    if found is None:
        return await _create(adapter, migrations)
    if found > current:
        raise _mismatch(adapter.description, found, current)
    report = SchemaReport(adapter.description, found, found)
    for migration in migrations[found:]:
        await migration.apply(adapter)
        await adapter.record(migration.version, migration.summary)
        report.version = migration.version
        report.applied.append(migration.version)
    return report
