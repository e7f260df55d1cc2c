"""The engine's exceptions: one root, `EngineError`, so callers can map them in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store_svc.engine.model import Claim, ExpectedVersion

__all__ = [
    "ClaimTaken",
    "DuplicateEventId",
    "EngineError",
    "StorageUnavailable",
    "StoreClosed",
    "WriterLockHeld",
    "WrongExpectedVersion",
]


class EngineError(Exception):
    """Root of every error the event store engine raises on purpose."""


class WrongExpectedVersion(EngineError):
    """The stream is not at the version the append expected (optimistic concurrency)."""

    def __init__(self, aggregate_id: str, expected: ExpectedVersion, actual: int) -> None:
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"wrong expected version for stream {aggregate_id!r}: "
            f"expected {expected}, actual version is {actual}"
        )


class ClaimTaken(EngineError):
    """A unique claim (e.g. an e-mail address) is owned by another aggregate."""

    def __init__(self, claim: Claim, owner_aggregate_id: str) -> None:
        self.claim = claim
        self.owner_aggregate_id = owner_aggregate_id
        super().__init__(
            f"claim {claim.namespace}:{claim.value!r} is already held by "
            f"aggregate {owner_aggregate_id!r}"
        )


class DuplicateEventId(EngineError):
    """An event id of the append is already used by a different stored event.

    `aggregate_id`/`version` say where the id is stored ("" / 0 when the id is
    repeated inside the append itself).
    """

    def __init__(self, event_id: str, aggregate_id: str = "", version: int = 0) -> None:
        self.event_id = event_id
        self.aggregate_id = aggregate_id
        self.version = version
        where = (
            f"already stored as version {version} of stream {aggregate_id!r}"
            if aggregate_id
            else "repeated within the same append"
        )
        super().__init__(f"event id {event_id!r} is {where}")


class EventIdsAlreadyStored(Exception):
    """Storage refused a batch (wrote nothing) because one of its event ids is stored.

    Only storages with ``unique_event_ids`` raise it; the engine then decides
    the batch again knowing where those ids are (a retry, or a caller bug).
    Never reaches a caller.
    """


class StorageUnavailable(EngineError):
    """The storage could not be reached or refused the operation; the message says which."""


class WriterLockHeld(EngineError):
    """Another writer holds the storage's writer lock; a second writer must not start."""


class StoreClosed(EngineError):
    """The event store was closed; no more appends are accepted."""
