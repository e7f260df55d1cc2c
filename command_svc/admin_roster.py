"""Who the admins are, for the rule "the last active admin cannot be deactivated".

The rule spans every admin's stream, so it is checked here (the domain gets
the verdict, ``Deactivate.last_active_admin``) and made race-free by the
store: every deactivation takes the claim
``domain.deactivation_claim(n)``, ``n`` being the number of deactivations
the store held *before* this command read the admins' states (see
``domain.claims.DEACTIVATION_CLAIM_NAMESPACE``). Two deactivations decided
on the same reading take the same claim and the second is refused; the
command then reads again and decides again, and sees the first one.

Admin ids come from ``user.created`` events (a role never changes); they
are read incrementally (only events after the last one read) and kept, so
only the first check after a start pages through the registrations. Each
admin's status is read from the store itself at decision time, never from
a cache.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

import domain
from command_svc.store_client import Created, Loaded

__all__ = ["AdminRoster", "RosterStore"]

_PAGE: Final = 1000


class RosterStore(Protocol):
    """What the roster reads of the event store (``StoreClient`` has it)."""

    async def load(self, user_id: str) -> Loaded: ...

    async def count_events(self, event_type: str) -> int: ...

    async def created_after(self, position: int, limit: int) -> list[Created]: ...


class AdminRoster:
    """The admins known from the store (see the module docstring)."""

    def __init__(self, store: RosterStore) -> None:
        self._store = store
        self._admins: set[str] = set()
        self._read_to = 0
        self._lock = asyncio.Lock()

    async def deactivations(self) -> int:
        """How many deactivations and erasures the store holds now (read before the
        admins' states): both can remove an active admin, so both take the claim."""
        deactivated = await self._store.count_events(domain.UserDeactivated.EVENT_TYPE)
        return deactivated + await self._store.count_events(domain.UserErased.EVENT_TYPE)

    async def admin_ids(self) -> set[str]:
        """Every user ever registered as an admin, up to now."""
        async with self._lock:
            while True:
                page = await self._store.created_after(self._read_to, _PAGE)
                for created in page:
                    if created.role == domain.ROLE_ADMIN:
                        self._admins.add(created.user_id)
                    self._read_to = created.position
                if len(page) < _PAGE:
                    return set(self._admins)

    async def admins(self) -> list[domain.UserState]:
        """Every admin's current state, read from the store."""
        states = []
        for user_id in sorted(await self.admin_ids()):
            state, _ = await self._store.load(user_id)
            if state is not None:
                states.append(state)
        return states

    async def another_active_admin(self, user_id: str) -> bool:
        """Whether an admin other than ``user_id`` is active right now."""
        for admin_id in sorted(await self.admin_ids() - {user_id}):
            state, _ = await self._store.load(admin_id)
            if state is not None and state.is_active:
                return True
        return False
