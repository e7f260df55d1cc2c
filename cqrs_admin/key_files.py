"""The personal-data key store in backups (``pii/``): copied with the events, restored
beside them.

Invariant: a backup holds the key of every subject whose sealed values it holds,
or that subject's erasure record. The key store is copied *after* the events:
a key is made before its subject's first event is written, so every event in the
copy has its key; a subject erased between the two copies is recorded as erased
in the key store's copy, so its values read as erased (as they were meant to).

Without its keys a restored log cannot be read (a sealed value with neither a
key nor an erasure record is an error), so a backup without the key store is no
backup. The embedded stack's generated master key (``pii-master.key`` in
``DATA_DIR``) is copied too; a production master key (``PII_MASTER_KEY``) lives
in the operator's secret store and must be the same when the backup is restored.
"""

from __future__ import annotations

import shutil
import sqlite3
import tarfile
from pathlib import Path

from cqrs_admin.errors import AdminError
from cqrs_admin.sqlite_copy import sqlite_snapshot
from cqrs_admin.stack import Stack
from pii.settings import KEYS_FILE, MASTER_KEY_FILE

__all__ = ["copy_keys", "restore_keys"]


def copy_keys(stack: Stack, work: Path) -> dict[str, Path]:
    """Archive members for the key store (a consistent copy) and a generated master key."""
    files: dict[str, Path] = {}
    source = stack.store.pii_settings.keys_file
    if source.exists():
        copy = work / KEYS_FILE
        sqlite_snapshot(source, copy)
        files[KEYS_FILE] = copy
    master = stack.data_dir / MASTER_KEY_FILE
    if stack.store.pii_settings.master_key is None and master.exists():
        files[MASTER_KEY_FILE] = master
    return files


def restore_keys(tar: tarfile.TarFile, stack: Stack, work: Path) -> None:
    """Installs the backup's key store: as the file when none exists, else merged into
    the existing one (keys and erasure records it lacks; both must be sealed by the
    same master key)."""
    master = stack.data_dir / MASTER_KEY_FILE
    _extract(tar, MASTER_KEY_FILE, master, keep_existing=True)
    target = stack.store.pii_settings.keys_file
    if not target.exists():
        _extract(tar, KEYS_FILE, target, keep_existing=True)
        return
    copy = work / KEYS_FILE
    if not _extract(tar, KEYS_FILE, copy, keep_existing=False):
        return
    db = sqlite3.connect(target, timeout=30)
    try:
        db.execute("ATTACH DATABASE ? AS restored", (str(copy),))
        mine = db.execute("SELECT value FROM main.pii_meta WHERE name = 'check'").fetchone()
        theirs = db.execute("SELECT value FROM restored.pii_meta WHERE name = 'check'").fetchone()
        if mine and theirs and mine != theirs:
            raise AdminError(
                f"the key store {target} is sealed by another master key than the backup's: "
                "set PII_MASTER_KEY to the backup's, or PII_KEYS_FILE to a new file"
            )
        with db:
            for table in ("pii_keys", "pii_erased"):
                db.execute(f"INSERT OR IGNORE INTO main.{table} SELECT * FROM restored.{table}")
        db.execute("DETACH DATABASE restored")
    finally:
        db.close()


def _extract(tar: tarfile.TarFile, name: str, target: Path, *, keep_existing: bool) -> bool:
    """Writes member ``name`` to ``target``; False when the backup has no such member
    (a backup from before personal data was sealed) or ``target`` is kept."""
    try:
        member = tar.extractfile(name)
    except KeyError:
        return False
    if member is None or (keep_existing and target.exists()):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        shutil.copyfileobj(member, out)
    target.chmod(0o600)
    return True
