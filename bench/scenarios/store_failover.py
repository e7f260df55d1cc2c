"""Scenario 11: failover of the ClickHouse store (issue 10, hot standby; production only).

A leader store_svc and a standby on a fresh database; the leader is paused with
SIGSTOP and the time to the standby's first acknowledged append is measured,
``Budget.rounds`` times, at the default lease TTL (15 s). Target: within the
TTL + 5 s. The embedded stack has no standby (its SQLite file is locked by one
process), so it reports nothing here.
"""

from __future__ import annotations

import statistics

from bench.context import RunContext
from bench.report import Row, Target
from bench.stack import EMBEDDED
from bench.store_failover import failover_times

__all__ = ["run"]

NUMBER = 11
TTL_MS = 15_000
WITHIN = Target("<=", TTL_MS / 1000 + 5, on_figure=True, text="<= lease TTL + 5 s (20 s)")


async def run(ctx: RunContext) -> list[Row]:
    if ctx.stack.name == EMBEDDED:
        return []
    figures = await failover_times(ctx.stack.infra, ctx.budget.rounds, TTL_MS)
    return [
        Row(
            NUMBER,
            ctx.stack.name,
            "leader SIGSTOP -> first append acknowledged by the standby, median",
            statistics.median(figures),
            "s",
            target=WITHIN,
            details={"rounds_s": figures, "lease_ttl_s": TTL_MS / 1000},
        )
    ]
