"""Rate limiting of failed logins, per email and per client address.

In-memory sliding windows, **per process**: each query_svc instance counts
only the failures it saw, and a restart forgets them. Behind a load balancer
with N instances an attacker gets up to N times the budget; a shared store
(e.g. the read model's database) would be needed to do better.

Rule: a key (an email, or a client address) that failed ``limit`` times
within the last ``window`` seconds is refused until the oldest of those
failures leaves the window; :meth:`SlidingWindow.retry_after` says how long
that is. A successful login clears the email's failures (not the
address's: one good account must not launder an address's guessing).

Memory is bounded: at most ``max_keys`` keys per window, the least recently
failed evicted first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

from query_svc.settings import LoginLimits

DEFAULT_MAX_KEYS: Final = 100_000


class SlidingWindow:
    """Failure times per key within the last ``window`` seconds (see module docstring)."""

    def __init__(self, *, limit: int, window: float, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit, window and max_keys must be positive")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str, *, now: float) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        times = self._live(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        # The (len - limit + 1)-th oldest failure must leave the window.
        return times[len(times) - self.limit] + self.window - now

    def record(self, key: str, *, now: float) -> None:
        """Counts one failure of ``key`` at ``now``."""
        times = self._live(key, now)
        if times is None:
            times = deque(maxlen=self.limit)
            self._failures[key] = times
        times.append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def reset(self, key: str) -> None:
        """Forgets ``key``'s failures."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)


class LoginRateLimiter:
    """The two windows a login goes through: its email and its client address."""

    def __init__(
        self,
        limits: LoginLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        window = float(limits.window_seconds)
        self._by_email = SlidingWindow(
            limit=limits.max_failures_per_email, window=window, max_keys=max_keys
        )
        self._by_address = SlidingWindow(
            limit=limits.max_failures_per_address, window=window, max_keys=max_keys
        )
        self._clock = clock

    def retry_after(self, *, email: str, address: str) -> int:
        """Whole seconds to wait before trying again (at least 1 when refused); 0 if allowed.

        An empty key (no email given, no known address) is not limited by that window.
        """
        now = self._clock()
        wait = 0.0
        if email:
            wait = max(wait, self._by_email.retry_after(email, now=now))
        if address:
            wait = max(wait, self._by_address.retry_after(address, now=now))
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def failed(self, *, email: str, address: str) -> None:
        """Counts a failed login against both keys."""
        now = self._clock()
        if email:
            self._by_email.record(email, now=now)
        if address:
            self._by_address.record(address, now=now)

    def succeeded(self, *, email: str) -> None:
        """Clears the email's failures after a successful login."""
        if email:
            self._by_email.reset(email)
