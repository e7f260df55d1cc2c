"""In-memory stand-ins for the event store and the password hasher."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import domain
from command_svc.errors import ClaimConflict, StoreConflict, StoreUnavailable
from command_svc.store_client import Appended, Claims, Created, Loaded, Trace


@dataclass
class AppendCall:
    user_id: str
    expected_version: int
    events: tuple[domain.DomainEvent, ...]
    event_ids: tuple[str, ...]
    trace: Trace


@dataclass
class FakeStore:
    """An event store with the real one's rules: versions, claims, positions.

    ``conflicts`` makes the next N appends fail with StoreConflict after a
    concurrent writer "moved" nothing (enough to drive the retry loop);
    ``unavailable`` makes every call fail with StoreUnavailable; ``hung``
    makes appends wait forever (a store that never answers).
    """

    streams: dict[str, list[domain.DomainEvent]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    other_claims: dict[tuple[str, str], str] = field(default_factory=dict)
    log: list[tuple[int, domain.DomainEvent]] = field(default_factory=list)
    position: int = 0
    conflicts: int = 0
    unavailable: bool = False
    hung: bool = False
    appends: list[AppendCall] = field(default_factory=list)
    loads: int = 0

    async def load(self, user_id: str) -> Loaded:
        if self.unavailable:
            raise StoreUnavailable("down")
        self.loads += 1
        state = domain.fold(self.streams.get(user_id, []))
        return Loaded(state, state.version if state else 0)

    async def append(
        self,
        *,
        user_id: str,
        expected_version: int,
        events: Sequence[domain.DomainEvent],
        event_ids: Sequence[str],
        trace: Trace,
        extra_claims: Claims = (),
    ) -> Appended:
        if self.unavailable:
            raise StoreUnavailable("down")
        if self.hung:
            await asyncio.Event().wait()
        self.appends.append(
            AppendCall(user_id, expected_version, tuple(events), tuple(event_ids), trace)
        )
        if self.conflicts:
            self.conflicts -= 1
            raise StoreConflict("moved")
        stream = self.streams.setdefault(user_id, [])
        if len(stream) != expected_version:
            raise StoreConflict(f"expected {expected_version}, actual {len(stream)}")
        for claim in extra_claims:
            holder = self.other_claims.get(claim)
            if holder is not None and holder != user_id:
                raise ClaimConflict(f"held by {holder}")
        for event in events:
            changes = domain.claims_for(event)
            for value in changes.take:
                holder = self.claims.get(value)
                if holder is not None and holder != user_id:
                    if not stream:
                        del self.streams[user_id]
                    raise ClaimConflict(f"held by {holder}")
        for claim in extra_claims:
            self.other_claims[claim] = user_id
        for event in events:
            changes = domain.claims_for(event)
            for value in changes.release:
                self.claims.pop(value, None)
            for value in changes.take:
                self.claims[value] = user_id
        stream.extend(events)
        for event in events:
            self.position += 1
            self.log.append((self.position, event))
        return Appended(len(stream), self.position)

    async def count_events(self, event_type: str) -> int:
        if self.unavailable:
            raise StoreUnavailable("down")
        return sum(1 for _, event in self.log if event_type == event.EVENT_TYPE)

    async def created_after(self, position: int, limit: int) -> list[Created]:
        if self.unavailable:
            raise StoreUnavailable("down")
        found = [
            Created(at, event.aggregate_id, event.role)
            for at, event in self.log
            if at > position and isinstance(event, domain.UserCreated)
        ]
        return found[:limit]


@dataclass
class FakeHasher:
    """Deterministic "hashes" that count how often bcrypt would have run."""

    hashes: int = 0
    verifies: int = 0

    async def hash(self, plain: str) -> str:
        self.hashes += 1
        return f"hashed:{plain}"

    async def verify(self, plain: str, hashed: str) -> bool:
        self.verifies += 1
        return hashed == f"hashed:{plain}"
