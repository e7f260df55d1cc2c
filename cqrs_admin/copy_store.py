"""``cqrs-admin copy-store``: the one-off copy-and-encrypt of an event store.

An immutable log is not rewritten in place: this copies an event store into
a new one, and the operator then runs the services on the copy. Two kinds of
store, behind :class:`StorePlace` (the only store-specific part): the
embedded SQLite file of a data folder (``--from DIR --to DIR``,
:mod:`cqrs_admin.copy_sqlite`) and a ClickHouse database (the deployment's,
copied into a new database, :mod:`cqrs_admin.copy_clickhouse`). On the way
every event is

- upcast to its type's current version (today's plaintext format included:
  a payload without a version key is version 1) and stamped with it;
- opened with the source's key store (values sealed there are decrypted; a
  subject erased there reads erased) and sealed again with the target's key
  store, so no personal field reaches the copy in clear;
- given its claims as keyed digests (a plaintext email claim of an old store
  becomes ``claim_digest``; a digest is kept, which needs both key stores to
  share the master key).

Event ids, positions, stream versions, times, correlation, causation and
trace ids are kept exactly. Snapshots are not copied (a cache: time travel
makes new ones, sealed); nor is the read model (query_svc rebuilds it from
the copied events on its first start) or the relay's position (the relay
publishes the copy from the start).

Verification, after the copy: the same number of events, the same version of
every stream, every event's envelope and claims as expected, and every
payload opening (with the target's keys, re-read from disk) equal to the
source's upcast and opened payload. Any difference: :class:`AdminError`
(exit status 1) naming the first ones.

Invariants: the source is only read; the target must not hold an event store
yet; nothing personal is written to the target in clear.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol, TextIO

from cqrs_admin.errors import AdminError
from domain import UserErased
from domain.upcasting import stamp, upcast
from pii.codec import PayloadCodec, UndecryptableValue
from pii.keystore import KeyStore, WrongMasterKey
from pii.settings import KEYS_FILE, PiiSettings, decode_master_key, new_master_key
from store_svc.engine.model import (
    PendingEvent,
    RecordedEvent,
    digest_plaintext_claims,
    is_claim_digest,
)

__all__ = ["CopyReport", "EventLog", "LogWriter", "StorePlace", "copy_store", "verify_copy"]

_CHUNK: Final = 1000
_SHOWN: Final = 5  # mismatches named in the error
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class EventLog(Protocol):
    """An event store opened for reading."""

    def events(self) -> AsyncIterator[PendingEvent]:
        """Every event with its claims, in position order."""
        ...

    async def heads(self) -> dict[str, int]:
        """Every stream's version, as the store's by-stream index holds it."""
        ...


class LogWriter(Protocol):
    """A new event store, opened for writing (its writer lock held): the storage itself."""

    async def write_batch(self, events: Sequence[PendingEvent]) -> None: ...


class StorePlace(Protocol):
    """Where one event store is, and its key store: the copy's only store-specific part."""

    @property
    def keys(self) -> PiiSettings: ...

    async def check_source(self) -> None:
        """AdminError unless it holds an event store that no writer is writing to."""
        ...

    async def check_target(self, source: StorePlace) -> None:
        """AdminError if it holds an event store already, or is ``source``."""
        ...

    def reader(self) -> AbstractAsyncContextManager[EventLog]: ...

    def writer(self) -> AbstractAsyncContextManager[LogWriter]: ...


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


# --- key stores ---------------------------------------------------------------------


def _open_keys(settings: PiiSettings, what: str) -> KeyStore:
    try:
        return settings.open_keys()
    except WrongMasterKey as exc:
        raise AdminError(f"{what}: {exc}") from None


def _source_keys(settings: PiiSettings, scratch: Path) -> KeyStore:
    """The source's key store; an empty one in ``scratch`` for a store that never had one
    (today's plaintext format: nothing of it is sealed)."""
    if settings.keys_file.exists():
        return _open_keys(settings, "the source's key store")
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


@dataclass(slots=True)
class _Survey:
    """What the source holds that must be settled before anything is sealed."""

    events: int = 0
    erased: dict[str, datetime] = field(default_factory=dict)  # subject -> first erasure
    digested_claims: bool = False


async def _survey(log: EventLog) -> _Survey:
    found = _Survey()
    async for event in log.events():
        found.events += 1
        r = event.record
        if r.event_type == UserErased.EVENT_TYPE and r.aggregate_id not in found.erased:
            found.erased[r.aggregate_id] = r.timestamp
        if not found.digested_claims:
            claims = event.claims + event.releases
            found.digested_claims = any(is_claim_digest(c.value) for c in claims)
    return found


def _settle(survey: _Survey, source: KeyStore, target: KeyStore) -> None:
    """Refuses digested claims under another claim key than the target's (they could
    not be matched against new registrations); tombstones in the target every subject
    the source's log says is erased, before anything of theirs is sealed (their fields
    are then stored erased)."""
    probe = ("probe", "probe")
    if survey.digested_claims and source.claim_digest(*probe) != target.claim_digest(*probe):
        raise AdminError(
            "the source's claims are keyed digests made with another master key than "
            "the target's: set PII_MASTER_KEY to the source's master key"
        )
    for subject, at in survey.erased.items():
        target.erase(subject, at=at.isoformat())


# --- the copy and its verification --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Codecs:
    source: PayloadCodec
    target: PayloadCodec


@asynccontextmanager
async def _codecs(source: StorePlace, target: StorePlace) -> AsyncIterator[_Codecs]:
    """Both key stores, open (the target's created if new)."""
    async with AsyncExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cqrs-copy-")))
        source_keys = _source_keys(source.keys, scratch)
        stack.callback(source_keys.close)
        target.keys.keys_file.parent.mkdir(parents=True, exist_ok=True)
        target_keys = _open_keys(target.keys, "the copy's key store")
        stack.callback(target_keys.close)
        yield _Codecs(PayloadCodec(source_keys), PayloadCodec(target_keys))


async def _batches(
    log: EventLog, codecs: _Codecs, report: CopyReport
) -> AsyncIterator[list[PendingEvent]]:
    """The source's events converted, in position order, :data:`_CHUNK` at a time."""
    events = log.events()
    while True:
        batch: list[PendingEvent] = []
        # The batch's new data keys commit together, before the batch is written.
        with codecs.target.keys.bulk():
            while len(batch) < _CHUNK and (event := await anext(events, None)) is not None:
                converted = _converted(event, _opened(codecs.source, event.record), codecs.target)
                before = event.claims + event.releases
                after = converted.claims + converted.releases
                report.digested_claims += sum(a != b for a, b in zip(before, after, strict=True))
                batch.append(converted)
        if batch:
            yield batch
        if len(batch) < _CHUNK:
            return


async def verify_copy(source: StorePlace, target: StorePlace) -> list[str]:
    """Every difference between the source's events and the copy's (empty: none).

    Reads both stores again, and the target's keys with a new key store
    instance (nothing cached from the copy)."""
    found: list[str] = []
    async with (
        _codecs(source, target) as codecs,
        source.reader() as old_log,
        target.reader() as new_log,
    ):
        source_heads, target_heads = await old_log.heads(), await new_log.heads()
        if source_heads != target_heads:
            differ = sorted(
                k
                for k in source_heads.keys() | target_heads.keys()
                if source_heads.get(k) != target_heads.get(k)
            )
            found.append(f"stream versions differ for {len(differ)} streams, e.g. {differ[0]}")
        olds, news = old_log.events(), new_log.events()
        while True:
            old, new = await anext(olds, None), await anext(news, None)
            if old is None and new is None:
                break
            if old is None or new is None:
                found.append(f"the copy holds {'more' if old is None else 'fewer'} events")
                break
            found.extend(_differences(old, new, codecs))
    return found


def _differences(old: PendingEvent, new: PendingEvent, codecs: _Codecs) -> list[str]:
    where = f"position {old.record.position}"
    if old.record._replace(payload=b"") != new.record._replace(payload=b""):
        return [f"{where}: the envelope differs ({new.record._replace(payload=b'')})"]
    out = []
    digest = codecs.target.keys.claim_digest
    expected = (
        digest_plaintext_claims(old.claims, digest),
        digest_plaintext_claims(old.releases, digest),
    )
    if expected != (new.claims, new.releases):
        out.append(f"{where}: the claims differ")
    try:
        opened = _opened(codecs.target, new.record)
    except (AdminError, ValueError) as exc:  # a copy that is not even JSON differs too
        return [*out, f"{where}: the payload does not open ({exc})"]
    if _opened(codecs.source, old.record) != opened:
        out.append(f"{where}: the payload does not open equal to the source's")
    return out


async def copy_store(source: StorePlace, target: StorePlace, out: TextIO) -> CopyReport:
    """Copies, then verifies (AdminError on any difference); the report."""
    await target.check_target(source)
    await source.check_source()
    report = CopyReport()
    async with _codecs(source, target) as codecs, source.reader() as log:
        survey = await _survey(log)
        _settle(survey, codecs.source.keys, codecs.target.keys)
        report.erased_subjects = len(survey.erased)
        report.streams = len(await log.heads())
        async with target.writer() as writer:
            async for batch in _batches(log, codecs, report):
                await writer.write_batch(batch)
                report.events += len(batch)
                print(
                    f"copy-store: {report.events}/{survey.events} events copied",
                    file=out,
                    flush=True,
                )
    print("copy-store: verifying the copy against the source", file=out, flush=True)
    report.mismatches = await verify_copy(source, target)
    if report.mismatches:
        shown = "; ".join(report.mismatches[:_SHOWN])
        raise AdminError(
            f"verification failed: {len(report.mismatches)} differences ({shown}); "
            f"do not use {target}"
        )
    return report
