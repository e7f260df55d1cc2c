"""Property: a group-committed batch behaves exactly like the same appends applied one by one.

Random appends (streams, expected versions, claims taken and released) are
sent concurrently so that they land in one batch; the outcome of each must
match a sequential reference model, and the claims rebuilt at reopen must
match the model's owners. Runs on SQLite (the planner is storage-agnostic).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_svc.engine import (
    AppendResult,
    Claim,
    ClaimTaken,
    EngineError,
    EventStore,
    ExpectedVersion,
    SqliteStorage,
    WrongExpectedVersion,
)
from tests.integration.store_engine.support import T0, new_event

pytestmark = pytest.mark.integration

STREAMS = ("s0", "s1", "s2")
EMAILS = tuple(Claim("email", f"e{i}@example.com") for i in range(2))


@dataclass(frozen=True)
class Op:
    stream: int
    expected: int | None  # None: ANY
    claim: int | None
    release: int | None


ops_strategy = st.lists(
    st.builds(
        Op,
        stream=st.integers(0, len(STREAMS) - 1),
        expected=st.one_of(st.none(), st.integers(0, 3)),
        claim=st.one_of(st.none(), st.integers(0, len(EMAILS) - 1)),
        release=st.one_of(st.none(), st.integers(0, len(EMAILS) - 1)),
    ),
    min_size=1,
    max_size=12,
)


def model(ops: list[Op]) -> tuple[list[str | int], dict[Claim, str]]:
    """Sequential reference: per op the new version or the error kind; final claim owners."""
    heads: dict[str, int] = {}
    owners: dict[Claim, str] = {}
    outcomes: list[str | int] = []
    for op in ops:
        stream = STREAMS[op.stream]
        current = heads.get(stream, 0)
        if op.expected is not None and op.expected != current:
            outcomes.append("wrong")
            continue
        released = dict(owners)
        if op.release is not None and released.get(EMAILS[op.release]) == stream:
            del released[EMAILS[op.release]]
        if op.claim is not None:
            holder = released.get(EMAILS[op.claim])
            if holder is not None and holder != stream:
                outcomes.append("taken")
                continue
            released[EMAILS[op.claim]] = stream
        owners = released
        heads[stream] = current + 1
        outcomes.append(current + 1)
    return outcomes, owners


async def run_in_one_batch(path: Path, ops: list[Op]) -> tuple[list[str | int], list[str]]:
    # The tasks enqueue before the writer runs, so they form one batch; the property
    # holds across batches too (batches are applied in order).
    store = await EventStore.open(SqliteStorage(path), batch_max_delay=0.005)
    try:
        results = await asyncio.gather(
            *(
                store.append(
                    STREAMS[op.stream],
                    "user",
                    ExpectedVersion.ANY if op.expected is None else ExpectedVersion(op.expected),
                    [
                        new_event(
                            claims=[EMAILS[op.claim]] if op.claim is not None else [],
                            releases=[EMAILS[op.release]] if op.release is not None else [],
                        )
                    ],
                    now=T0,
                )
                for op in ops
            ),
            return_exceptions=True,
        )
    finally:
        await store.close()
    outcomes: list[str | int] = []
    positions: list[int] = []
    for result in results:
        if isinstance(result, AppendResult):
            outcomes.append(result.version)
            positions.extend(result.positions)
        elif isinstance(result, WrongExpectedVersion):
            outcomes.append("wrong")
        elif isinstance(result, ClaimTaken):
            outcomes.append("taken")
        else:
            raise AssertionError(f"unexpected outcome {result!r}")
    assert positions == list(range(1, len(positions) + 1))  # gapless, in arrival order

    # Claims as rebuilt from storage: who holds each e-mail after a reopen?
    reopened = await EventStore.open(SqliteStorage(path))
    holders: list[str] = []
    try:
        for email in EMAILS:
            try:
                await reopened.append(
                    f"probe-{email.value}", "user", ExpectedVersion.ANY,
                    [new_event(claims=[email])], now=T0,
                )  # fmt: skip
                holders.append("")
            except ClaimTaken as taken:
                holders.append(taken.owner_aggregate_id)
            except EngineError as error:  # pragma: no cover - reported by the assertion
                holders.append(repr(error))
    finally:
        await reopened.close()
    return outcomes, holders


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_strategy)
def test_a_batch_equals_the_same_appends_one_by_one(ops: list[Op]) -> None:
    expected_outcomes, owners = model(ops)
    with tempfile.TemporaryDirectory() as folder:
        outcomes, holders = asyncio.run(run_in_one_batch(Path(folder) / "events.sqlite3", ops))
    assert outcomes == expected_outcomes
    assert holders == [owners.get(email, "") for email in EMAILS]
