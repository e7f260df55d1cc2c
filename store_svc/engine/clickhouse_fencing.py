"""Fencing of the ClickHouse writer: lease epochs, the fences they leave, and the schema for them.

ClickHouse has neither transactions nor conditional INSERTs, so a writer that
was paused (SIGSTOP, a long GC, a VM freeze) after it checked its lease can
still land rows after a successor took over. Fencing makes such rows harmless:

* Every lease is taken with an **epoch** greater than every epoch before it,
  and every row a writer stores carries its epoch.
* Before its first write in an epoch, the writer records a **fence**
  ``(epoch, start_position)``: the last position of the log it loaded. Rows of
  any EARLIER epoch above ``start_position`` are, from then on, invisible to
  every read (`visible_rows`): they are writes of a superseded writer that
  landed too late, never acknowledged.
* A writer acknowledges a batch only after its INSERTs returned AND a check
  made after them found no other lease with an epoch >= its own. If the
  check passes, the successor's lease row was not visible yet, so the
  successor loads its state (and its fence) after the batch landed: the batch
  is below the successor's fence, visible for ever. If it fails, the writer
  steps down and answers UNAVAILABLE: the batch may or may not be below the
  fence (an unknown outcome, which an idempotent retry settles).

Hence, for every position at most one visible event exists (a successor
writes only above its fence, and earlier epochs are cut at it), and versions
of a stream stay contiguous (heads are computed from visible rows only).
Reads still order duplicates by epoch (highest first) before ``LIMIT 1 BY``,
so that identical copies made by a repair are chosen deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["EPOCH_TABLES", "Fence", "add_epoch_columns", "visible_rows"]

logger = logging.getLogger(__name__)

#: Tables that carry an ``epoch`` column (the writer's lease epoch of each row).
EPOCH_TABLES = ("events", "events_by_position", "event_ids", "snapshots", "writer_lease")

# What ClickHouse 18.16 answers to ADD COLUMN of an existing column (code 44).
_ALREADY_EXISTS = "already exists"


@dataclass(frozen=True, slots=True, order=True)
class Fence:
    """Rows of epochs below ``epoch`` are visible only at positions <= ``start_position``."""

    epoch: int
    start_position: int


def visible_rows(fences: Sequence[Fence]) -> str:
    """A SQL condition on ``epoch`` and ``position`` true exactly for rows no fence cuts off.

    A row of epoch e is visible iff its position is <= the smallest
    ``start_position`` of the fences with an epoch above e: a ``multiIf`` over
    the fences in epoch order with suffix minimums (18.16 has no correlated
    subqueries, and the list is short: one fence per lease taken).
    """
    if not fences:
        return "1"
    ordered = sorted(fences)
    bounds: list[tuple[int, int]] = []
    smallest: int | None = None
    for fence in reversed(ordered):
        smallest = fence.start_position if smallest is None else min(smallest, fence.start_position)
        # The same bound as the next higher fence: its `epoch < higher` covers this one.
        if not bounds or bounds[-1][1] != smallest:
            bounds.append((fence.epoch, smallest))
    branches = ", ".join(f"epoch < {epoch}, {bound}" for epoch, bound in reversed(bounds))
    return f"position <= multiIf({branches}, 18446744073709551615)"


async def add_epoch_columns(
    fetch: Callable[[str, str], Awaitable[Sequence[Sequence[object]]]], database: str
) -> None:
    """Schema change for databases created before fencing: add ``epoch UInt64`` (default 0).

    Idempotent and safe to run concurrently: ClickHouse 18.16 has no
    ``ADD COLUMN IF NOT EXISTS`` (a syntax error there), so the tables still
    missing the column are looked up and a plain ``ADD COLUMN`` is sent to
    each; the duplicate-column error (another process was faster) counts as
    done. Rows written before the change read as epoch 0, older than every
    lease taken since. ``fetch(operation, statement)`` runs one statement.
    """
    names = ", ".join(f"'{table}'" for table in EPOCH_TABLES)
    present = await fetch(
        "look up epoch columns",
        f"SELECT table FROM system.columns WHERE database = '{database}' "
        f"AND table IN ({names}) AND name = 'epoch'",
    )
    have = {str(row[0]) for row in present}
    for table in EPOCH_TABLES:
        if table in have:
            continue
        try:
            await fetch(
                "add epoch column", f"ALTER TABLE {database}.{table} ADD COLUMN epoch UInt64"
            )
            logger.info("ClickHouse %s.%s: added the epoch column", database, table)
        except Exception as exc:
            if _ALREADY_EXISTS not in str(exc):
                raise
