"""The backup file: a gzip'd tar whose first member is ``manifest.json``.

Embedded stack: ``events.sqlite3`` and ``read_model.sqlite3``, copies made
with SQLite's online backup API. Production stack: ``events.jsonl`` (the
event log up to the manifest's position; see ``cqrs_admin.event_lines``),
and no read model: a restore rebuilds it from the events.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["FORMAT", "Manifest", "read_manifest", "write_archive"]

FORMAT: Final = "cqrs-users-backup/1"
MANIFEST: Final = "manifest.json"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds: every acknowledged event up to ``position``."""

    stack: str  # "embedded" | "production"
    position: int
    created_at: str
    code_version: str
    schema_versions: dict[str, int]
    files: list[str] = field(default_factory=list)
    format: str = FORMAT


def write_archive(out: Path, manifest: Manifest, files: dict[str, Path]) -> None:
    """Writes ``out`` (through a temporary name, renamed when complete)."""
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        body = json.dumps(asdict(manifest), indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(body)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(body))
        for name, path in files.items():
            tar.add(path, arcname=name, recursive=False)
    partial.replace(out)


def read_manifest(tar: tarfile.TarFile) -> Manifest:
    member = tar.extractfile(MANIFEST)
    if member is None:
        raise ValueError("no manifest.json")
    body: dict[str, Any] = json.loads(member.read())
    if body.get("format") != FORMAT:
        raise ValueError(f"format {body.get('format')!r} is not {FORMAT}")
    return Manifest(**body)
