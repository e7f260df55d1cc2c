"""A circuit breaker for one dependency: answer at once while it is known down.

States:

* **closed**: calls go through; ``failures_to_open`` outages in a row
  (timeouts, refused connections: what :mod:`service_kit.dependency_errors`
  calls an outage; never a bug of ours) open the circuit.
* **open**: every call is refused at once with UNAVAILABLE "<dependency> is
  down; retrying in N s", for ``reset_after`` seconds.
* **half-open**: after that, exactly one call (the probe) goes through while
  the others are still refused; its success closes the circuit, its outage
  opens it again for ``reset_after``. A probe that ends without a verdict
  (cancelled, or a bug) frees the slot for the next caller.

A health check may report its own probes (:meth:`succeeded`,
:meth:`failed`) whatever the state, so a dependency that came back closes
the circuit on the next check, and one found down opens it with the same
rule as calls.

Why not a library: purgatory (asyncio) and circuitbreaker let every caller
through in half-open, so under a hung database each of them waits its full
timeout, which is what this breaker exists to avoid; purgatory also runs
each call through a message bus with wall-clock (``time.time``) state, and
circuitbreaker's context-manager form never checks the state (only its
decorator does); pybreaker needs Tornado for coroutines. The state machine
is small enough to own: one event loop, no locks, a monotonic clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from service_kit.dependency_errors import Dependency, DependencyUnavailable

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]

_PROBE_WAIT: Final = 1.0
"""What "retrying in" says while another caller's probe is under way."""


@dataclass(frozen=True, slots=True)
class BreakerView:
    """The breaker as health reports show it."""

    state: State
    reason: str
    down_for: float
    retry_in: float


class CircuitBreaker:
    """See the module docstring. ``admit`` before a call, then exactly one of
    ``succeeded``, ``failed`` or ``released``."""

    def __init__(
        self,
        dependency: Dependency,
        *,
        failures_to_open: int = 3,
        reset_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_to_open < 1 or reset_after <= 0:
            raise ValueError("failures_to_open must be >= 1 and reset_after > 0")
        self.dependency = dependency
        self._threshold = failures_to_open
        self._reset_after = reset_after
        self._clock = clock
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._down_since: float | None = None
        self._probing = False
        self.last_reason = ""

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() >= self._opened_at + self._reset_after:
            return "half-open"
        return self._state

    def view(self) -> BreakerView:
        now = self._clock()
        state = self.state
        retry_in = 0.0
        if state == "open":
            retry_in = self._opened_at + self._reset_after - now
        elif state == "half-open" and self._probing:
            retry_in = _PROBE_WAIT
        down_for = now - self._down_since if self._down_since is not None else 0.0
        return BreakerView(state, self.last_reason, down_for, retry_in)

    def admit(self) -> bool:
        """Lets a call through, or raises :class:`DependencyUnavailable` at once.

        Returns True when the call is the half-open probe.
        """
        state = self.state
        if state == "closed":
            return False
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        raise self.dependency.unavailable(self.last_reason, retry_in=self.view().retry_in)

    def succeeded(self) -> None:
        """The dependency answered: close the circuit."""
        if self._state != "closed":
            log.info("%s is back after %.1fs", self.dependency.describe(), self.view().down_for)
        self._state = "closed"
        self._failures = 0
        self._probing = False
        self._down_since = None
        self.last_reason = ""

    def failed(self, reason: str) -> None:
        """The dependency did not answer (an outage, not a bug)."""
        self.last_reason = reason
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
        was_probe, self._probing = self._probing, False
        if self._state == "closed":
            self._failures += 1
            if self._failures < self._threshold:
                return
            log.warning(
                "%s is down (%s): refusing calls at once, probing every %.1fs",
                self.dependency.describe(),
                reason,
                self._reset_after,
            )
        elif not was_probe and self.state == "open":
            return  # a late failure of a call admitted before the circuit opened
        self._state = "open"
        self._opened_at = now

    def released(self) -> None:
        """The call ended without telling anything about the dependency."""
        self._probing = False

    def error(self, exc: BaseException) -> DependencyUnavailable | None:
        """Records ``exc`` (an outage opens the way to opening; a bug only
        releases) and returns the UNAVAILABLE answer for it, or None for a bug."""
        unavailable = self.dependency.error(exc)
        if unavailable is None:
            self.released()
        else:
            self.failed(unavailable.reason)
        return unavailable
