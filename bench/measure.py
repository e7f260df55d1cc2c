"""Timing primitives shared by every scenario: closed-loop rates and percentiles.

Invariants:
- a rate counts only calls that *finished* inside the measuring window,
  after a warm-up whose calls are discarded;
- every loop is bounded in time: workers stop by themselves once the window
  has closed (a call in flight then finishes, bounded by its own deadline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.cpu import CpuMeter

__all__ = ["CONCURRENCY", "Latencies", "RateResult", "closed_loop", "percentile"]

#: Concurrent clients of every throughput scenario (the issue fixes 64).
CONCURRENCY = 64


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True, slots=True)
class Latencies:
    """p50/p99/max of a sample, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        ms = [s * 1000.0 for s in seconds]
        return cls(len(ms), percentile(ms, 0.50), percentile(ms, 0.99), max(ms, default=0.0))


@dataclass(frozen=True, slots=True)
class RateResult:
    """Calls per second over the window, and the latencies of the counted calls."""

    calls: int
    seconds: float
    latencies: Latencies
    # CPU seconds per process group over the window (when a meter was given).
    cpu: Mapping[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


async def closed_loop(
    call: Callable[[int, int], Awaitable[object]],
    *,
    workers: int = CONCURRENCY,
    seconds: float,
    warmup: float,
    meter: CpuMeter | None = None,
) -> RateResult:
    """Runs ``call(worker, i)`` back to back in ``workers`` tasks; measures after ``warmup``.

    An exception in any call stops the measurement and propagates: a
    benchmark that silently counts failures would flatter the code. With a
    ``meter``, the CPU its processes used during the window is in ``cpu``.
    """
    window_open = False
    window_closed = False
    latencies: list[float] = []

    async def worker(w: int) -> None:
        i = 0
        while not window_closed:
            started = time.perf_counter()
            await call(w, i)
            i += 1
            if window_open and not window_closed:
                latencies.append(time.perf_counter() - started)

    tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
    try:
        await _sleep_or_fail(tasks, warmup)
        before = meter.sample() if meter else None
        window_open = True
        began = time.perf_counter()
        await _sleep_or_fail(tasks, seconds)
        window_closed = True
        elapsed = time.perf_counter() - began
        calls = len(latencies)
        cpu = meter.sample().minus(before) if meter and before else {}
        await asyncio.gather(*tasks)
    finally:
        window_closed = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return RateResult(calls, elapsed, Latencies.of(latencies[:calls]), cpu)


async def _sleep_or_fail(tasks: list[asyncio.Task[None]], seconds: float) -> None:
    """Sleeps ``seconds``, but re-raises at once if a worker failed meanwhile."""
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()
