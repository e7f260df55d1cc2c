"""``copy-store --to-database NAME --to-keys FILE``: a ClickHouse event database as a
:class:`~cqrs_admin.copy_store.StorePlace`.

The source is the deployment the environment describes, read as the services
read it (``EVENT_STORE_BACKEND=clickhouse``, ``CLICKHOUSE_*``; its key store
``PII_KEYS_FILE`` or ``$DATA_DIR/pii-keys.sqlite3``, which an old store may
lack). The target is database NAME on the same server, or on the one
``TARGET_CLICKHOUSE_HOST`` names (``TARGET_CLICKHOUSE_USER`` and
``TARGET_CLICKHOUSE_PASSWORD`` default to the source's), with its own key
store FILE (created if new) under the same master key (``PII_MASTER_KEY``, or
the file ``pii-master.key`` beside each key store).

Reads are fenced like a store_svc's (rows a superseded writer left are not
copied); the copy is written through the storage adapter under its writer
lease, so its tables are the ones a store_svc would have written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from cqrs_admin import clickhouse
from cqrs_admin.copy_store import EventLog, LogWriter, StorePlace
from cqrs_admin.errors import AdminError
from cqrs_admin.stack import Stack
from cqrs_admin.writer import clickhouse_leases
from pii.settings import PiiSettings
from store_svc.engine import ClickHouseConfig, ClickHouseStorage
from store_svc.engine.model import PendingEvent

__all__ = ["ClickHousePlace", "clickhouse_places"]

_CHUNK: Final = 2000
_TARGET_PREFIX: Final = "TARGET_"


@dataclass(frozen=True, slots=True)
class _DatabaseLog:
    storage: ClickHouseStorage

    async def events(self) -> AsyncIterator[PendingEvent]:
        after = 0
        while chunk := await self.storage.read_log(after_position=after, limit=_CHUNK):
            for event in chunk:
                yield event
            after = chunk[-1].record.position

    async def heads(self) -> dict[str, int]:
        return await self.storage.stream_heads()


@dataclass(frozen=True, slots=True)
class ClickHousePlace:
    """One ClickHouse event database and the key store of its deployment."""

    config: ClickHouseConfig
    keys: PiiSettings

    def __str__(self) -> str:
        return f"ClickHouse {self.config.host}:{self.config.port}/{self.config.database}"

    async def _holds_events(self) -> bool:
        async with clickhouse.session(self.config) as run:
            rows = await run("copy-store", f"EXISTS TABLE {self.config.database}.events", None)
        return bool(rows[0][0])

    async def check_source(self) -> None:
        if not await self._holds_events():
            raise AdminError(f"{self} holds no event store: nothing to copy")
        async with clickhouse.session(self.config) as run:
            leases = await clickhouse_leases(self.config, run)
        leader = [owner for owner, state in leases if state == "leader"]
        if leader:
            raise AdminError(
                f"a store_svc holds the writer lease of {self} ({leader[0]}): stop the "
                "services first, or events appended meanwhile would be missing from the copy"
            )

    async def check_target(self, source: StorePlace) -> None:
        if str(source) == str(self):
            raise AdminError(f"{self} is the source: copy into a new database")
        if await self._holds_events():
            raise AdminError(f"{self} exists: copy into a new database (drop a failed copy first)")
        if self.keys.keys_file.resolve() == source.keys.keys_file.resolve():
            raise AdminError(
                f"{self.keys.keys_file} is the source's key store: give the copy its own"
            )

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[EventLog]:
        storage = await ClickHouseStorage.open(self.config)
        try:
            yield _DatabaseLog(storage)
        finally:
            await storage.close()

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[LogWriter]:
        async with clickhouse.writing(self.config) as storage:
            yield storage


def clickhouse_places(
    env: Mapping[str, str], database: str, keys_file: Path
) -> tuple[ClickHousePlace, ClickHousePlace]:
    """The deployment's event database (from ``env``) and the copy's: ``database`` on
    the server ``TARGET_CLICKHOUSE_*`` names, else the same one (SettingsError or
    AdminError naming a bad value)."""
    stack = Stack.from_env(env)
    if stack.store.backend != "clickhouse":
        raise AdminError(
            "--to-database copies a ClickHouse event store: set EVENT_STORE_BACKEND="
            "clickhouse and CLICKHOUSE_* as the services have them (or use --from/--to)"
        )
    overrides = {
        name.removeprefix(_TARGET_PREFIX): value
        for name, value in env.items()
        if name.startswith(_TARGET_PREFIX + "CLICKHOUSE_")
    }
    try:
        target = ClickHouseConfig.from_env({**env, **overrides})
        target = replace(target, database=database)
    except ValueError as exc:
        raise AdminError(f"the copy's ClickHouse: {exc}") from None
    source_keys = stack.store.pii_settings
    return (
        ClickHousePlace(stack.store.clickhouse, source_keys),
        ClickHousePlace(target, PiiSettings(keys_file, source_keys.master_key)),
    )
