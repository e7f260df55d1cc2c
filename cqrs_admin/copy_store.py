"""``cqrs-admin copy-store --from DIR --to DIR``: the one-off copy-and-encrypt of an event store.

An immutable log is not rewritten in place: this copies the embedded event
store of data folder ``--from`` (``events.sqlite3``) into a new data folder
``--to``, and the operator then runs the services on the copy. On the way
every event is

- upcast to its type's current version (today's plaintext format included:
  a payload without a version key is version 1) and stamped with it;
- opened with the source's key store (``--from``'s ``pii-keys.sqlite3``, if
  any: values sealed there are decrypted; a subject erased there reads
  erased) and sealed again with the target's key store, so no personal
  field reaches the copy in clear;
- given its claims as keyed digests (a plaintext email claim of an old store
  becomes ``claim_digest``; a digest is kept, which needs both key stores to
  share the master key).

Event ids, positions, stream versions, times, correlation, causation and
trace ids are kept exactly. Snapshots are not copied (a cache: time travel
makes new ones, sealed); nor is the read model (query_svc rebuilds it from
the copied events on its first start) or the relay's position (the relay
publishes the copy from the start).

Master keys: ``PII_MASTER_KEY`` if set (for both folders), else each folder's
``pii-master.key`` (generated in ``--to`` if absent, as ``make up`` does).

Verification, after the copy: the same number of events, the same version of
every stream, every event's envelope and claims as expected, and every
payload opening (with the target's keys, re-read from disk) equal to the
source's upcast and opened payload. Any difference: :class:`AdminError`
(exit status 1) naming the first ones.

Invariants: the source is only read (opened read-only); the target must not
hold an event store yet; nothing personal is written to the target in clear.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from cqrs_admin.errors import AdminError
from cqrs_admin.writer import sqlite_writer
from domain import UserErased
from domain.upcasting import stamp, upcast
from pii.codec import PayloadCodec, UndecryptableValue
from pii.keystore import KeyStore, WrongMasterKey
from pii.settings import KEYS_FILE, PiiSettings, decode_master_key, new_master_key
from store_svc.engine import SqliteStorage
from store_svc.engine.model import (
    PendingEvent,
    RecordedEvent,
    decode_claims,
    digest_plaintext_claims,
    from_micros,
    is_claim_digest,
)

__all__ = ["CopyReport", "copy_store", "verify_copy"]

SQLITE_FILE: Final = "events.sqlite3"  # StoreSettings.sqlite_path's name in a data folder
_CHUNK: Final = 1000
_SHOWN: Final = 5  # mismatches named in the error
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# The columns read, in RecordedEvent's order; traceparent is absent from the
# oldest files (it reads "").
_COLUMNS: Final = (
    "position",
    "event_id",
    "aggregate_id",
    "aggregate_type",
    "version",
    "event_type",
    "timestamp_us",
    "payload",
    "correlation_id",
    "causation_id",
)


@dataclass(slots=True)
class CopyReport:
    """What was copied: events, streams, claims turned from plaintext into digests."""

    events: int = 0
    streams: int = 0
    digested_claims: int = 0
    erased_subjects: int = 0
    mismatches: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"copied and verified {self.events} events of {self.streams} streams "
            f"({self.digested_claims} plaintext claims now keyed digests, "
            f"{self.erased_subjects} erased subjects kept erased)"
        )


# --- reading an event store file (read-only, any schema version) ------------------


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AdminError(f"{path} does not exist: no event store to copy")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    except sqlite3.Error as exc:
        raise AdminError(f"{path}: cannot read: {exc}") from exc
    if not present:
        conn.close()
        raise AdminError(f"{path} has no events table: not an event store")
    return conn


def _rows(conn: sqlite3.Connection) -> Iterator[PendingEvent]:
    """Every event of the file with its claims, in position order."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    trace = "traceparent" if "traceparent" in present else "''"
    query = f"SELECT {', '.join(_COLUMNS)}, {trace}, claims, releases FROM events ORDER BY position"
    for row in conn.execute(query):
        # RecordedEvent's field order; times and payloads converted from storage types.
        record = RecordedEvent._make((*row[:6], from_micros(row[6]), bytes(row[7]), *row[8:11]))
        yield PendingEvent(record, decode_claims(row[11]), decode_claims(row[12]))


def _heads(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT aggregate_id, max(version) FROM events GROUP BY aggregate_id")
    return {aggregate_id: int(version) for aggregate_id, version in rows}


# --- key stores ---------------------------------------------------------------------


def _master_key(env: Mapping[str, str]) -> bytes | None:
    given = env.get("PII_MASTER_KEY", "")
    return decode_master_key(given, "PII_MASTER_KEY") if given else None


def _open_keys(folder: Path, master: bytes | None, what: str) -> KeyStore:
    try:
        return PiiSettings(folder / KEYS_FILE, master).open_keys()
    except WrongMasterKey as exc:
        raise AdminError(f"{what}: {exc}") from None


def _source_keys(folder: Path, master: bytes | None, scratch: Path) -> KeyStore:
    """The source's key store; an empty one in ``scratch`` for a store that never had one
    (today's plaintext format: nothing of it is sealed)."""
    if (folder / KEYS_FILE).exists():
        return _open_keys(folder, master, "the source's key store")
    return KeyStore(scratch / KEYS_FILE, decode_master_key(new_master_key(), "scratch key"))


# --- the conversion of one event ------------------------------------------------------


def _opened(codec: PayloadCodec, record: RecordedEvent) -> dict[str, object]:
    """The payload as every reader sees it: current version, personal fields opened,
    secrets kept (the store's own view)."""
    payload = json.loads(record.payload)
    if not isinstance(payload, dict):
        raise AdminError(f"event {record.event_id}: the payload is not a JSON object")
    try:
        return codec.open_event(
            record.event_type,
            upcast(record.event_type, payload),
            record.aggregate_id,
            reveal_secrets=True,
        )
    except UndecryptableValue as exc:
        raise AdminError(f"event {record.event_id} at {record.position}: {exc}") from None


def _converted(
    source: PendingEvent, opened: dict[str, object], target: PayloadCodec
) -> PendingEvent:
    r = source.record
    sealed = stamp(r.event_type, target.seal_event(r.event_type, opened, r.aggregate_id))
    digest = target.keys.claim_digest
    return PendingEvent(
        r._replace(payload=_COMPACT.encode(sealed).encode()),
        digest_plaintext_claims(source.claims, digest),
        digest_plaintext_claims(source.releases, digest),
    )


def _check_claim_keys(conn: sqlite3.Connection, source: KeyStore, target: KeyStore) -> None:
    """Refuses when the source holds digested claims under another claim key than the
    target's (they could not be matched against new registrations)."""
    probe = ("probe", "probe")
    if source.claim_digest(*probe) == target.claim_digest(*probe):
        return
    for (claims,) in conn.execute("SELECT claims FROM events WHERE claims != ''"):
        if any(is_claim_digest(c.value) for c in decode_claims(claims)):
            raise AdminError(
                "the source's claims are keyed digests made with another master key than "
                "the target's: set PII_MASTER_KEY to the source's master key"
            )


def _erase_erased(conn: sqlite3.Connection, target: KeyStore) -> int:
    """Tombstones in the target every subject the source's log says is erased, before
    anything of theirs is sealed (their fields are then stored erased)."""
    rows = conn.execute(
        "SELECT aggregate_id, min(timestamp_us) FROM events WHERE event_type = ? "
        "GROUP BY aggregate_id",
        (UserErased.EVENT_TYPE,),
    )
    count = 0
    for aggregate_id, micros in rows:
        target.erase(aggregate_id, at=from_micros(micros).isoformat())
        count += 1
    return count


# --- the copy and its verification --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ends:
    """The source file (read-only) and both key stores, open."""

    source_file: sqlite3.Connection
    source: PayloadCodec
    target: PayloadCodec


@contextmanager
def _open_ends(source_dir: Path, target_dir: Path, env: Mapping[str, str]) -> Iterator[_Ends]:
    master = _master_key(env)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cqrs-copy-")))
        conn = stack.enter_context(closing(_connect_read_only(source_dir / SQLITE_FILE)))
        source_keys = _source_keys(source_dir, master, scratch)
        stack.callback(source_keys.close)
        target_dir.mkdir(parents=True, exist_ok=True)
        target_keys = _open_keys(target_dir, master, "the copy's key store")
        stack.callback(target_keys.close)
        yield _Ends(conn, PayloadCodec(source_keys), PayloadCodec(target_keys))


def _batches(ends: _Ends, report: CopyReport) -> Iterator[list[PendingEvent]]:
    """The source's events converted, in position order, :data:`_CHUNK` at a time."""
    rows = _rows(ends.source_file)
    while True:
        batch: list[PendingEvent] = []
        # The batch's new data keys commit together, before the batch is written.
        with ends.target.keys.bulk():
            for event in itertools.islice(rows, _CHUNK):
                converted = _converted(event, _opened(ends.source, event.record), ends.target)
                before = event.claims + event.releases
                after = converted.claims + converted.releases
                report.digested_claims += sum(a != b for a, b in zip(before, after, strict=True))
                batch.append(converted)
        yield batch
        if len(batch) < _CHUNK:
            return


def _check_target(source_dir: Path, target_dir: Path) -> Path:
    """The target's event store file, after refusing a target or source in use."""
    target_file = target_dir / SQLITE_FILE
    if target_file.exists():
        raise AdminError(f"{target_file} exists: copy into a new, empty data folder")
    if source_dir.resolve() == target_dir.resolve():
        raise AdminError("--from and --to are the same folder")
    holder = sqlite_writer(source_dir / SQLITE_FILE)
    if holder:
        raise AdminError(
            f"a store_svc is writing to {source_dir / SQLITE_FILE} ({holder}): stop the "
            "services first, or events appended meanwhile would be missing from the copy"
        )
    return target_file


def verify_copy(source_dir: Path, target_dir: Path, env: Mapping[str, str]) -> list[str]:
    """Every difference between the source's events and the copy's (empty: none).

    Reads both files again from disk, and the target's keys with a new key store
    instance (nothing cached from the copy)."""
    found: list[str] = []
    with (
        _open_ends(source_dir, target_dir, env) as ends,
        closing(_connect_read_only(target_dir / SQLITE_FILE)) as copy,
    ):
        source_heads, target_heads = _heads(ends.source_file), _heads(copy)
        if source_heads != target_heads:
            differ = sorted(
                k
                for k in source_heads.keys() | target_heads.keys()
                if source_heads.get(k) != target_heads.get(k)
            )
            found.append(f"stream versions differ for {len(differ)} streams, e.g. {differ[0]}")
        for old, new in itertools.zip_longest(_rows(ends.source_file), _rows(copy)):
            if old is None or new is None:
                found.append(f"the copy holds {'more' if old is None else 'fewer'} events")
                break
            found.extend(_differences(old, new, ends.source, ends.target))
    return found


def _differences(
    old: PendingEvent, new: PendingEvent, source: PayloadCodec, target: PayloadCodec
) -> list[str]:
    where = f"position {old.record.position}"
    if old.record._replace(payload=b"") != new.record._replace(payload=b""):
        return [f"{where}: the envelope differs ({new.record._replace(payload=b'')})"]
    out = []
    digest = target.keys.claim_digest
    expected = (
        digest_plaintext_claims(old.claims, digest),
        digest_plaintext_claims(old.releases, digest),
    )
    if expected != (new.claims, new.releases):
        out.append(f"{where}: the claims differ")
    if _opened(source, old.record) != _opened(target, new.record):
        out.append(f"{where}: the payload does not open equal to the source's")
    return out


async def copy_store(
    source_dir: Path, target_dir: Path, env: Mapping[str, str], out: TextIO
) -> CopyReport:
    """Copies, then verifies (AdminError on any difference); the report."""
    target_file = _check_target(source_dir, target_dir)
    report = CopyReport()
    with _open_ends(source_dir, target_dir, env) as ends:
        _check_claim_keys(ends.source_file, ends.source.keys, ends.target.keys)
        report.erased_subjects = _erase_erased(ends.source_file, ends.target.keys)
        report.streams = len(_heads(ends.source_file))
        total = int(ends.source_file.execute("SELECT count(*) FROM events").fetchone()[0])
        storage = await SqliteStorage.open(target_file)
        try:
            await storage.acquire_writer_lock()  # no store_svc may start on it meanwhile
            for batch in _batches(ends, report):
                await storage.write_batch(batch)
                report.events += len(batch)
                print(f"copy-store: {report.events}/{total} events copied", file=out, flush=True)
        finally:
            await storage.close()
    print("copy-store: verifying the copy against the source", file=out, flush=True)
    report.mismatches = verify_copy(source_dir, target_dir, env)
    if report.mismatches:
        shown = "; ".join(report.mismatches[:_SHOWN])
        raise AdminError(
            f"verification failed: {len(report.mismatches)} differences ({shown}); "
            f"do not use {target_dir}"
        )
    return report
