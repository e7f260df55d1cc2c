"""Erasure survives crashes and restored backups: every erased user's key is gone at start.

store_svc destroys a user's data key right after a ``user.erased`` event
commits. If the process dies in between, or the key store is restored from a
backup older than some erasures, a key the log says is erased would still
exist. :func:`shred_erased` runs at every start, before anything is served:
it destroys the key of every user a stored ``user.erased`` names (a no-op
for those already tombstoned), so the log is the one record of who is erased.
"""

from __future__ import annotations

from typing import Final, Protocol

from domain import UserErased, format_timestamp
from pii.codec import PayloadCodec
from store_svc.engine import RecordedEvent

__all__ = ["shred_erased"]

_PAGE: Final = 1000


class ErasureLog(Protocol):
    """What is read of the store (``EventStore`` has it)."""

    async def read_all(
        self, *, after_position: int = 0, limit: int = 1000, event_types: tuple[str, ...] = ()
    ) -> list[RecordedEvent]: ...


async def shred_erased(store: ErasureLog, codec: PayloadCodec) -> int:
    """Destroys the key of every erased user still holding one; returns how many."""
    after, shredded = 0, 0
    while True:
        page = await store.read_all(
            after_position=after, limit=_PAGE, event_types=(UserErased.EVENT_TYPE,)
        )
        for record in page:
            if not codec.keys.is_erased(record.aggregate_id):
                codec.erase(record.aggregate_id, at=format_timestamp(record.timestamp))
                shredded += 1
        if len(page) < _PAGE:
            return shredded
        after = page[-1].position
