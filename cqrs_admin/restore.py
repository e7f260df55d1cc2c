"""``cqrs-admin restore --from FILE``: a backup into an empty data folder or database.

Refused unless the target is empty, so a restore never mixes two histories:
embedded, ``DATA_DIR`` must be missing or empty; production, the ClickHouse
database must hold no event and the read model no projected event. Then the
services start on it: the read model (a copy for the embedded stack, empty
for production) catches up from its checkpoint by itself.

Production restores write the events through the storage adapter itself
(under its writer lease, as store_svc writes), so the restored tables are
the ones the store would have written. Use a new ``KAFKA_TOPIC`` after a
restore: the old topic may hold events after the backup's position.
"""

from __future__ import annotations

import asyncio
import tarfile
import tempfile
from pathlib import Path

from cqrs_admin import clickhouse
from cqrs_admin.archive import Manifest, read_manifest
from cqrs_admin.errors import AdminError
from cqrs_admin.event_lines import from_line
from cqrs_admin.key_files import restore_keys
from cqrs_admin.stack import Stack
from cqrs_admin.status import collect
from store_svc.engine.model import PendingEvent

__all__ = ["restore"]

_CHUNK = 2000
_EMBEDDED_FILES = ("events.sqlite3", "read_model.sqlite3")


def _open(source: Path) -> tuple[tarfile.TarFile, Manifest]:
    try:
        tar = tarfile.open(source, "r:gz")  # noqa: SIM115 - closed by the caller
    except (OSError, tarfile.TarError) as exc:
        raise AdminError(f"{source}: not a readable backup ({exc})") from None
    try:
        return tar, read_manifest(tar)
    except (KeyError, ValueError, TypeError) as exc:
        tar.close()
        raise AdminError(f"{source}: not a cqrs-admin backup ({exc})") from None


def _restore_files(tar: tarfile.TarFile, stack: Stack) -> None:
    target = stack.data_dir
    if target.exists() and any(target.iterdir()):
        raise AdminError(
            f"DATA_DIR {target} is not empty: restore into a new, empty folder "
            "(set DATA_DIR to it), then start the system there"
        )
    target.mkdir(parents=True, exist_ok=True)
    for name in _EMBEDDED_FILES:
        member = tar.extractfile(name)
        if member is None:
            raise AdminError(f"the backup lacks {name}")
        with (target / name).open("wb") as out:
            while block := member.read(1 << 20):
                out.write(block)


async def _check_production_empty(stack: Stack) -> None:
    ch = stack.store.clickhouse
    async with clickhouse.session(ch) as run:
        for table in ("events", "events_by_position", "event_ids"):
            exists = await run("restore", f"EXISTS TABLE {ch.database}.{table}", None)
            if exists[0][0]:
                rows = await run("restore", f"SELECT count() FROM {ch.database}.{table}", None)
                if rows[0][0]:
                    raise AdminError(
                        f"ClickHouse database {ch.database} already holds events: restore "
                        "into a new database (set CLICKHOUSE_DB to a new name)"
                    )
    status = await collect(stack)
    if status.read_model.position:
        raise AdminError(
            f"the read model {status.read_model.where} is not empty (at position "
            f"{status.read_model.position}): use a new, empty database or schema"
        )


async def _restore_events(tar: tarfile.TarFile, stack: Stack, manifest: Manifest) -> None:
    member = tar.extractfile("events.jsonl")
    if member is None:
        raise AdminError("the backup lacks events.jsonl")
    async with clickhouse.writing(stack.store.clickhouse) as storage:
        batch: list[PendingEvent] = []
        written = 0
        for raw in member:
            batch.append(from_line(raw.decode("utf-8")))
            if len(batch) >= _CHUNK:
                await storage.write_batch(batch)
                written += len(batch)
                batch = []
        await storage.write_batch(batch)
        written += len(batch)
        if written != manifest.position:
            raise AdminError(
                f"the backup holds {written} events, its manifest says {manifest.position}"
            )


def _restore_keys(tar: tarfile.TarFile, stack: Stack) -> None:
    with tempfile.TemporaryDirectory(prefix="cqrs-restore-") as work:
        restore_keys(tar, stack, Path(work))


async def restore(stack: Stack, source: Path) -> Manifest:
    """Restores ``source`` into the configured (empty) stores; the backup's manifest."""
    tar, manifest = await asyncio.to_thread(_open, source)
    with tar:
        if manifest.stack == "embedded":
            if not stack.embedded:
                raise AdminError("an embedded backup restores into the embedded stack (SQLite)")
            await asyncio.to_thread(_restore_files, tar, stack)
            await asyncio.to_thread(_restore_keys, tar, stack)
        else:
            if stack.store.backend != "clickhouse":
                raise AdminError(
                    "a production backup restores into ClickHouse (EVENT_STORE_BACKEND)"
                )
            await _check_production_empty(stack)
            await asyncio.to_thread(_restore_keys, tar, stack)  # before the events are readable
            await _restore_events(tar, stack, manifest)
    return manifest
