"""The schema runner (service_kit.schema_versions) against an in-memory store."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from service_kit.schema_versions import (
    Migration,
    SchemaMismatch,
    check_sequence,
    migrate,
    prepare,
)

pytestmark = pytest.mark.unit


@dataclass
class FakeStore:
    """A store whose 'tables' are a set of names and whose version rows are a list."""

    tables: set[str] = field(default_factory=set)
    versions: list[int] | None = None  # None: no version table
    fail_at: int = 0

    @property
    def description(self) -> str:
        return "fake store"

    async def found_version(self) -> int | None:
        if self.versions is not None:
            return max(self.versions, default=0)
        return 0 if self.tables else None

    async def create_current(self) -> None:
        self.tables |= {"events", "email_column"}

    async def record(self, version: int, summary: str) -> None:
        self.versions = [*(self.versions or []), version]


async def _baseline(store: FakeStore) -> None:
    store.tables.add("events")


async def _add_column(store: FakeStore) -> None:
    if store.fail_at == 2:
        raise RuntimeError("disk full")
    store.tables.add("email_column")


MIGRATIONS = (Migration(1, "baseline", _baseline), Migration(2, "email column", _add_column))


async def test_an_empty_store_is_created_at_the_code_version_by_a_service() -> None:
    store = FakeStore()
    report = await prepare(store, MIGRATIONS)
    assert (report.found, report.version, store.versions) == (None, 2, [2])
    assert store.tables == {"events", "email_column"}
    assert "created at version 2" in report.line()


async def test_a_service_accepts_a_store_at_its_version_and_changes_nothing() -> None:
    store = FakeStore({"events", "email_column"}, [1, 2])
    report = await prepare(store, MIGRATIONS)
    assert (report.found, report.version, store.versions) == (2, 2, [1, 2])


@pytest.mark.parametrize(
    ("tables", "versions", "words"),
    [
        (
            {"events"},
            None,
            "version 0, older than this code's 2: stop the services and run `cqrs-admin migrate`",
        ),
        ({"events"}, [1], "version 1, older than this code's 2"),
        ({"events"}, [1, 2, 3], "version 3, newer than this code's 2"),
    ],
)
async def test_a_service_refuses_any_other_version_in_one_line(
    tables: set[str], versions: list[int] | None, words: str
) -> None:
    store = FakeStore(set(tables), versions)
    with pytest.raises(SchemaMismatch) as refused:
        await prepare(store, MIGRATIONS)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert store.versions == versions  # nothing written


async def test_migrate_applies_each_pending_migration_in_order_and_records_it() -> None:
    store = FakeStore({"events"}, None)  # legacy: tables, no version table
    report = await migrate(store, MIGRATIONS)
    assert (report.found, report.version, report.applied) == (0, 2, [1, 2])
    assert store.versions == [1, 2]
    assert "email_column" in store.tables
    again = await migrate(store, MIGRATIONS)
    assert again.applied == []
    assert "nothing to do" in again.line()


async def test_a_failed_migration_leaves_the_store_at_the_one_before() -> None:
    store = FakeStore({"events"}, [1], fail_at=2)
    with pytest.raises(RuntimeError):
        await migrate(store, MIGRATIONS)
    assert store.versions == [1]
    store.fail_at = 0
    assert (await migrate(store, MIGRATIONS)).applied == [2]


async def test_migrate_refuses_a_store_newer_than_the_code() -> None:
    store = FakeStore({"events"}, [1, 2, 3])
    with pytest.raises(SchemaMismatch, match="newer"):
        await migrate(store, MIGRATIONS)


def test_migrations_must_be_numbered_without_gaps() -> None:
    check_sequence(MIGRATIONS)
    with pytest.raises(ValueError, match=r"1\.\.N"):
        check_sequence((MIGRATIONS[0], Migration(3, "skips 2", _add_column)))
