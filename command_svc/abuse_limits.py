"""command_svc's budgets: registrations per client address, old-password checks per account.

- **Registrations** (``register_per_address`` within ``register_window``
  seconds per client address): one address cannot fill the store with
  accounts (nor tie up bcrypt). A refused registration hashes nothing.
  A caller with a service token (a trusted service, a load test) is not
  counted.
- **Old-password checks** (``password_checks`` within ``password_window``
  seconds per account): ``ChangePassword`` with an ``old_password`` is a
  password check, so it is budgeted like a login. The check is counted
  *before* bcrypt runs (simultaneous guesses cannot all be evaluated), a
  right password clears the account's count, a wrong one keeps counting.

Where the counts live (:class:`CommandLimits`):

- :meth:`CommandLimits.shared` (the production stack,
  ``COMMAND_LIMITS_BACKEND=postgres``): rows of ``limit_events`` in
  PostgreSQL (:class:`~service_kit.limit_store.SqlRequestLimiter`, one
  transaction holding a lock on the key): every instance counts the same
  rows and a restart forgets nothing. Keys are stored as keyed hashes
  (``limit_store.keyed_pseudonyms``), never as addresses.
- :meth:`CommandLimits.in_process` (``make up``, one instance): sliding
  windows in memory (:class:`~service_kit.request_limits.MemoryRequestLimiter`).

Every refusal is reported through :func:`service_kit.refusals.refused`
(by the limiter, under the limit's name) and answered RESOURCE_EXHAUSTED
with the seconds to wait.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from service_kit.errors import rate_limited
from service_kit.limit_store import SqlRequestLimiter, WriteTransactions
from service_kit.request_limits import MemoryRequestLimiter, RequestLimiter

__all__ = ["CALLER_ADDRESS", "AbuseLimits", "CommandLimits", "ResettableLimiter"]

# The client address of the call being served (set by the servicer's wrapper).
CALLER_ADDRESS: Final[contextvars.ContextVar[str]] = contextvars.ContextVar(
    "command_svc.caller_address", default=""
)

REGISTER: Final = "register.address"
PASSWORD_CHECK: Final = "password_check.account"


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """The budgets (see the module docstring)."""

    register_per_address: int = 20
    register_window: int = 3600
    password_checks: int = 5
    password_window: int = 900


class ResettableLimiter(RequestLimiter, Protocol):
    """A :class:`~service_kit.request_limits.RequestLimiter` that can forget a key."""

    async def reset(self, key: str) -> None:
        """Forgets every counted request of ``key``."""
        ...


class CommandLimits:
    """Counts registrations and old-password checks (see the module docstring)."""

    def __init__(self, *, register: RequestLimiter, checks: ResettableLimiter) -> None:
        self._register = register
        self._checks = checks

    @classmethod
    def in_process(
        cls, limits: AbuseLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> CommandLimits:
        """Budgets of this process alone (``make up``)."""

        def memory(name: str, limit: int, window: float) -> ResettableLimiter:
            return MemoryRequestLimiter(name=name, limit=limit, window=window, clock=clock)

        return cls._made_by(memory, limits)

    @classmethod
    def shared(
        cls,
        limits: AbuseLimits,
        database: WriteTransactions,
        *,
        pseudonym: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> CommandLimits:
        """Budgets shared by every instance on ``database`` (the production stack)."""

        def rows(scope: str, limit: int, window: float) -> ResettableLimiter:
            return SqlRequestLimiter(
                database, scope=scope, limit=limit, window=window, clock=clock, pseudonym=pseudonym
            )

        return cls._made_by(rows, limits)

    @classmethod
    def _made_by(
        cls, make: Callable[[str, int, float], ResettableLimiter], limits: AbuseLimits
    ) -> CommandLimits:
        return cls(
            register=make(REGISTER, limits.register_per_address, float(limits.register_window)),
            checks=make(PASSWORD_CHECK, limits.password_checks, float(limits.password_window)),
        )

    async def register(self, address: str) -> None:
        """Counts a registration from ``address``, or raises RESOURCE_EXHAUSTED."""
        if address and (wait := await self._register.acquire(address)):
            raise rate_limited(f"too many registrations; retry in {wait} seconds", wait)

    async def password_check(self, user_id: str) -> None:
        """Counts an old-password check of ``user_id``, or raises RESOURCE_EXHAUSTED."""
        if wait := await self._checks.acquire(user_id):
            raise rate_limited(f"too many password checks; retry in {wait} seconds", wait)

    async def password_matched(self, user_id: str) -> None:
        """The old password was right: the account's checks are forgotten."""
        await self._checks.reset(user_id)
