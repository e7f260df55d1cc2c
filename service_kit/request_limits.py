"""Limits on how often a request may be made, per key, in one process.

:class:`RequestLimiter` is the one abstraction: ``acquire(key)`` counts a
request for ``key`` if the key is within its budget and answers 0, or
answers how many whole seconds to wait (and counts nothing). It is async so
that an implementation backed by shared storage (query_svc's
``SqlRequestLimiter``, in the read model's database) can replace
:class:`MemoryRequestLimiter` without touching its callers.

:class:`MemoryRequestLimiter` keeps a sliding window per key in this
process (:class:`SlidingWindow`): with N instances behind a load balancer a
client gets up to N times the budget, and a restart forgets it. Memory is
bounded: at most ``max_keys`` keys, the least recently used evicted first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Protocol

from service_kit.refusals import refused

__all__ = ["DEFAULT_MAX_KEYS", "MemoryRequestLimiter", "RequestLimiter", "SlidingWindow"]

DEFAULT_MAX_KEYS: Final = 100_000


class SlidingWindow:
    """Event times per key within the last ``window`` seconds (see module docstring)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be positive")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._times.get(key)
        if times is None:
            return None
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._times[key]
            return None
        return times

    def retry_after(self, key: str, *, now: float) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        times = self._live(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        # The (len - limit + 1)-th oldest event must leave the window.
        return times[len(times) - self.limit] + self.window - now

    def record(self, key: str, *, now: float) -> None:
        """Counts one event of ``key`` at ``now``."""
        times = self._live(key, now)
        if times is None:
            times = deque(maxlen=self.limit)
            self._times[key] = times
        times.append(now)
        self._times.move_to_end(key)
        while len(self._times) > self._max_keys:
            self._times.popitem(last=False)

    def reset(self, key: str) -> None:
        """Forgets ``key``'s events."""
        self._times.pop(key, None)

    def __len__(self) -> int:
        return len(self._times)


class RequestLimiter(Protocol):
    """Counts requests per key within a budget (see the module docstring)."""

    async def acquire(self, key: str) -> int:
        """0 if a request for ``key`` may go (it is counted), else seconds to wait."""
        ...


class MemoryRequestLimiter:
    """At most ``limit`` requests per key within ``window`` seconds, in this process.

    With a ``name``, each refusal is reported to :func:`service_kit.refusals.refused`
    under it (as :class:`~service_kit.limit_store.SqlRequestLimiter` reports its scope).
    """

    def __init__(
        self,
        *,
        name: str = "",
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._name = name
        self._window = SlidingWindow(limit=limit, window=window, max_keys=max_keys)
        self._clock = clock

    async def acquire(self, key: str) -> int:
        now = self._clock()
        wait = self._window.retry_after(key, now=now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return refused(self._name, seconds) if self._name else seconds
        self._window.record(key, now=now)
        return 0

    async def reset(self, key: str) -> None:
        """Forgets ``key``'s requests."""
        self._window.reset(key)
