"""Limits on how often a request may be made (password reset mails), per key.

:class:`RequestLimiter` is the one abstraction: ``acquire(key)`` counts a
request for ``key`` if the key is within its budget and answers 0, or
answers how many whole seconds to wait (and counts nothing). It is async so
that an implementation backed by shared storage (the read model's
database, so that every query_svc instance shares the budget) can replace
:class:`MemoryRequestLimiter` without touching its callers.

:class:`MemoryRequestLimiter` keeps a sliding window per key in this
process (``query_svc.rate_limit.SlidingWindow``, the login limiter's): with
N instances behind a load balancer a client gets up to N times the budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from query_svc.rate_limit import DEFAULT_MAX_KEYS, SlidingWindow

__all__ = ["MemoryRequestLimiter", "RequestLimiter"]


class RequestLimiter(Protocol):
    """Counts requests per key within a budget (see the module docstring)."""

    async def acquire(self, key: str) -> int:
        """0 if a request for ``key`` may go (it is counted), else seconds to wait."""
        ...


class MemoryRequestLimiter:
    """At most ``limit`` requests per key within ``window`` seconds, in this process."""

    def __init__(
        self,
        *,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._window = SlidingWindow(limit=limit, window=window, max_keys=max_keys)
        self._clock = clock

    async def acquire(self, key: str) -> int:
        now = self._clock()
        wait = self._window.retry_after(key, now=now)
        if wait > 0:
            return max(1, math.ceil(wait))
        self._window.record(key, now=now)
        return 0
