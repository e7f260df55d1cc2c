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

Both are in-process sliding windows (:class:`~service_kit.request_limits.SlidingWindow`):
command_svc keeps no database of its own, so N instances give up to N times
the budget, and a restart forgets it. The login budgets, where guessing
needs no token at all, are shared across instances (query_svc's
``login_attempts``); here the caller already holds the account's token.

Every refusal goes through :func:`service_kit.refusals.refused`.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from service_kit.errors import rate_limited
from service_kit.refusals import refused
from service_kit.request_limits import SlidingWindow

__all__ = ["CALLER_ADDRESS", "AbuseLimits", "CommandLimits"]

# The client address of the call being served (set by the servicer's wrapper).
CALLER_ADDRESS: Final[contextvars.ContextVar[str]] = contextvars.ContextVar(
    "command_svc.caller_address", default=""
)


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """The budgets (see the module docstring)."""

    register_per_address: int = 20
    register_window: int = 3600
    password_checks: int = 5
    password_window: int = 900


class CommandLimits:
    """Counts registrations and old-password checks (see the module docstring)."""

    def __init__(self, limits: AbuseLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._register = SlidingWindow(
            limit=limits.register_per_address, window=float(limits.register_window)
        )
        self._checks = SlidingWindow(
            limit=limits.password_checks, window=float(limits.password_window)
        )
        self._clock = clock

    def _take(self, window: SlidingWindow, key: str, name: str, what: str) -> None:
        now = self._clock()
        wait = window.retry_after(key, now=now)
        if wait > 0:
            seconds = refused(name, max(1, math.ceil(wait)))
            raise rate_limited(f"too many {what}; retry in {seconds} seconds", seconds)
        window.record(key, now=now)

    def register(self, address: str) -> None:
        """Counts a registration from ``address``, or raises RESOURCE_EXHAUSTED."""
        if address:
            self._take(self._register, address, "register.address", "registrations")

    def password_check(self, user_id: str) -> None:
        """Counts an old-password check of ``user_id``, or raises RESOURCE_EXHAUSTED."""
        self._take(self._checks, user_id, "password_check.account", "password checks")

    def password_matched(self, user_id: str) -> None:
        """The old password was right: the account's checks are forgotten."""
        self._checks.reset(user_id)
