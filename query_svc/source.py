"""The port the projector reads events through, and what flows through it.

An :class:`EventSource` yields, for ``events(from_position=p)``, every stored
event with a position greater than ``p`` in position order, interleaved with
:class:`Checkpoint` markers, and never ends on its own unless the source
closes (then it may return or raise; the projector reconnects). Positions
are the store's gapless global positions, so a consumer can tell a gap from
a duplicate. Implementations: the store's catch-up subscription
(:mod:`query_svc.store_source`); a Kafka consumer later, behind this same
protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeAlias


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """One event as the store recorded it; ``payload`` may hold a password hash.

    ``occurred_at`` is the store's timestamp (the domain's ``occurred_at``).
    """

    position: int
    event_id: str
    aggregate_id: str
    event_type: str
    version: int
    occurred_at: datetime
    payload: Mapping[str, object] = field(repr=False)
    traceparent: str = ""  # of the request that caused it (W3C), "" if untraced


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Every event up to ``position`` has been yielded."""

    position: int


SourceItem: TypeAlias = StoredEvent | Checkpoint


class EventSource(Protocol):
    """Where events come from (see the module docstring for the contract)."""

    def events(self, *, from_position: int) -> AsyncIterator[SourceItem]:
        """Every event after ``from_position``, in order, then live ones."""
        ...

    async def head_position(self) -> int:
        """The highest position stored right now (0 for an empty store)."""
        ...
