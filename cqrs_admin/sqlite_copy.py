"""A consistent copy of a live SQLite database (the online backup API).

Shared by backups of the embedded stack's files (events, read model) and of
the personal-data key store: each copy is one read transaction, so it is one
snapshot even while the services keep writing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cqrs_admin.errors import AdminError


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy ``source`` into ``target`` as one snapshot; a missing source is an AdminError."""
    if not source.exists():
        raise AdminError(f"{source} does not exist: nothing to back up")
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
        finally:
            dst.close()
    finally:
        src.close()
