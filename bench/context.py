"""What every scenario is handed: the stack, the time budget and the run's earlier figures.

Ratios are taken against figures of the *same run and stack* (this machine
is shared and noisy), so the ceiling and scenario 3's rate are remembered
here once measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.profiling import Profiler
from bench.stack import StackSpec
from bench.tokens import Tokens

__all__ = ["Budget", "RunContext"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Durations and sizes; ``quick`` shrinks them for a smoke run, nothing else."""

    seconds: float  # measuring window of a rate
    warmup: float  # discarded calls before it
    rounds: int  # alternations of reference and subject windows (ratios: median)
    time_travel_calls: int  # GetStateAt calls per variant
    rebuild_events: int  # size of the store a rebuild reads (the issue: 100,000)
    peer_events_per_stream: int  # scenario 8: events saved per stream (64 streams)
    sequential_calls: int  # scenario 9: sequential changes (half as many read-your-writes)
    scale_users: int = 1_000_000  # scenario 10: users of the SQLite store (ClickHouse: a fifth)

    @classmethod
    def full(cls) -> Budget:
        return cls(
            seconds=5.0,
            warmup=1.0,
            rounds=3,
            time_travel_calls=200,
            rebuild_events=100_000,
            peer_events_per_stream=100,
            sequential_calls=1000,
        )

    @classmethod
    def quick(cls) -> Budget:
        return cls(
            seconds=2.0,
            warmup=0.5,
            rounds=1,
            time_travel_calls=50,
            rebuild_events=10_000,
            peer_events_per_stream=10,
            sequential_calls=200,
            scale_users=100_000,
        )


@dataclass(slots=True)
class RunContext:
    """One stack's run: its spec, budget, tokens and figures measured so far."""

    stack: StackSpec
    budget: Budget
    bcrypt_cost: int
    tokens: Tokens = field(default_factory=Tokens)
    profiler: Profiler | None = None
    change_email_per_s: float | None = None  # scenario 3, this run and stack
