"""Login budgets: an attempt is reserved before its password is checked, settled after.

Policy (after OWASP's authentication cheat sheet and Keycloak's brute-force
detection): guessing must stop quickly, but nobody may lock the owner out
cheaply.

- **Per email and client address** (``max_failures_per_pair`` within
  ``window_seconds``): the strict budget. A guesser from one address stops
  after a few tries; the owner, at another address, is unaffected.
- **Per email** (``max_failures_per_email``, wider) and **per address**
  (``max_failures_per_address``, wider still): they stop a guesser who
  spreads over many addresses or many accounts. They do not apply to a
  *known pair*: an address from which that account logged in successfully
  within ``known_pair_days`` (OWASP's "device cookie", by address). So the
  owner at a usual address still logs in while the account is under attack,
  and the users behind a NAT that guesses are not locked out of their own
  accounts.
- **Successful logins** per email (``max_logins_per_email`` within
  ``logins_window_seconds``): a login costs a bcrypt run and a session.
- An attempt counts as a failure **from the moment it is reserved** (before
  bcrypt), so N simultaneous guesses evaluate at most the budget, and the
  right password sent in the same burst is refused like the rest. A
  successful attempt turns into a success and clears its pair's failures.
- **Recording** (the ``user.login.recorded`` event): :meth:`LoginAttempts.succeeded`
  answers False for a repeat login of one account from one address within
  ``record_every_seconds``, and the caller does not append an event for it.

Every refusal goes through :func:`service_kit.refusals.refused` and carries
the seconds to wait (Retry-After). State lives in the read model's database
(:mod:`service_kit.limit_store`): shared by every instance, kept across restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import and_, delete, update

from query_svc.db import Database
from query_svc.settings import LoginLimits
from service_kit.limit_store import (
    LIMIT_EVENTS,
    KeyedLocks,
    count_since,
    lock_keys,
    oldest_since,
    purge,
    wait_seconds,
)
from service_kit.refusals import refused

__all__ = ["LoginAttempts", "Reservation", "TooManyAttempts"]

SCOPE: Final = "login"
KNOWN: Final = "login_known"
PENDING: Final = "pending"
FAILED: Final = "failed"
OK: Final = "ok"
# A reservation not yet settled counts as a failure.
_FAILING: Final = (PENDING, FAILED)


class TooManyAttempts(Exception):
    """Too many login attempts for this email and/or address; retry after some seconds."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(f"too many login attempts; retry in {retry_after} seconds")
        self.retry_after = retry_after
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Reservation:
    """One attempt counted against its budgets, to settle with failed/succeeded."""

    id: int
    email: str
    address: str


@dataclass(frozen=True, slots=True)
class _Budget:
    name: str
    limit: int
    window: float
    subject: str | None
    address: str | None
    outcomes: tuple[str, ...]


class LoginAttempts:
    """Reserves and settles login attempts (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        limits: LoginLimits,
        *,
        clock: Callable[[], float] = time.time,
        pseudonym: Callable[[str], str] = lambda value: value,
    ) -> None:
        self._db = database
        self._pseudonym = pseudonym  # limit_store.keyed_pseudonyms: no address stored
        self._limits = limits
        self._clock = clock
        self._locks = KeyedLocks()
        self._horizon = float(
            max(limits.window_seconds, limits.logins_window_seconds, limits.record_every_seconds)
        )

    def _budgets(self, email: str, address: str, *, known: bool) -> list[_Budget]:
        lim = self._limits
        window = float(lim.window_seconds)
        budgets = [
            _Budget("login.pair", lim.max_failures_per_pair, window, email, address, _FAILING),
            _Budget(
                "login.success",
                lim.max_logins_per_email,
                float(lim.logins_window_seconds),
                email,
                None,
                (OK,),
            ),
        ]
        if not known:
            budgets.append(
                _Budget("login.email", lim.max_failures_per_email, window, email, None, _FAILING)
            )
            if address:
                budgets.append(
                    _Budget(
                        "login.address",
                        lim.max_failures_per_address,
                        window,
                        None,
                        address,
                        _FAILING,
                    )
                )
        return budgets

    async def reserve(self, *, email: str, address: str) -> Reservation:
        """Counts an attempt now, or raises :class:`TooManyAttempts` (nothing counted)."""
        email, address = self._pseudonym(email), self._pseudonym(address)
        async with self._locks.hold([f"e:{email}", f"a:{address}"]):
            return await self._reserve(email, address)

    async def _reserve(self, email: str, address: str) -> Reservation:
        now = self._clock()
        async with self._db.write() as conn:
            await lock_keys(conn, [f"e:{email}", f"a:{address}"])
            await purge(conn, scope=SCOPE, before=now - self._horizon, subject=email)
            known = (
                await count_since(
                    conn,
                    scope=KNOWN,
                    since=now - self._limits.known_pair_days * 86400.0,
                    subject=email,
                    address=address,
                    outcomes=(OK,),
                )
                > 0
            )
            refusal: tuple[int, str] | None = None
            for budget in self._budgets(email, address, known=known):
                since = now - budget.window
                who = {"subject": budget.subject, "address": budget.address}
                used = await count_since(
                    conn, scope=SCOPE, since=since, outcomes=budget.outcomes, **who
                )
                if used < budget.limit:
                    continue
                oldest = await oldest_since(
                    conn, scope=SCOPE, since=since, outcomes=budget.outcomes, **who
                )
                wait = wait_seconds(oldest, budget.window, now)
                if refusal is None or wait > refusal[0]:
                    refusal = (wait, budget.name)
            if refusal is not None:
                wait, name = refusal
                raise TooManyAttempts(refused(name, wait), name)
            result = await conn.execute(
                LIMIT_EVENTS.insert().values(
                    scope=SCOPE, subject=email, address=address, at=now, outcome=PENDING
                )
            )
            row_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return Reservation(id=row_id, email=email, address=address)

    async def failed(self, attempt: Reservation) -> None:
        """Settles the attempt as a failure (it keeps counting until it leaves the window)."""
        async with self._db.write() as conn:
            await conn.execute(
                update(LIMIT_EVENTS).where(LIMIT_EVENTS.c.id == attempt.id).values(outcome=FAILED)
            )

    async def succeeded(self, attempt: Reservation) -> bool:
        """Settles the attempt as a success; True if this login should be recorded.

        The pair's failures are forgotten and the pair becomes known.
        """
        async with self._locks.hold([f"e:{attempt.email}", f"a:{attempt.address}"]):
            return await self._succeeded(attempt)

    async def _succeeded(self, attempt: Reservation) -> bool:
        now = self._clock()
        t = LIMIT_EVENTS.c
        pair = and_(t.subject == attempt.email, t.address == attempt.address)
        async with self._db.write() as conn:
            await lock_keys(conn, [f"e:{attempt.email}", f"a:{attempt.address}"])
            recent = await count_since(
                conn,
                scope=SCOPE,
                since=now - self._limits.record_every_seconds,
                subject=attempt.email,
                address=attempt.address,
                outcomes=(OK,),
            )
            await conn.execute(update(LIMIT_EVENTS).where(t.id == attempt.id).values(outcome=OK))
            await conn.execute(
                delete(LIMIT_EVENTS).where(t.scope == SCOPE, pair, t.outcome == FAILED)
            )
            await conn.execute(delete(LIMIT_EVENTS).where(t.scope == KNOWN, pair))
            await purge(conn, scope=KNOWN, before=now - self._limits.known_pair_days * 86400.0)
            await conn.execute(
                LIMIT_EVENTS.insert().values(
                    scope=KNOWN, subject=attempt.email, address=attempt.address, at=now, outcome=OK
                )
            )
        return recent == 0
