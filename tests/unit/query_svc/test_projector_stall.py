"""Projector.stall: when a read model is known stuck (fake clock, no database)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from query_svc.db import Database
from query_svc.projector import Projector
from query_svc.source import EventSource

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def projector(clock: Clock) -> Projector:
    # Neither is used by what these tests call.
    return Projector(
        database=cast(Database, None),
        source=cast(EventSource, None),
        stall_after=3.0,
        source_name="Kafka topic user-events at kafka:19092",
        clock=clock,
    )


async def applied(p: Projector, position: int) -> None:
    async with p.paused():
        p.adopt(position)


async def test_idle_and_caught_up_is_never_stalled() -> None:
    clock = Clock()
    p = projector(clock)
    await applied(p, 10)
    p.note_head(10)
    clock.now += 3600
    assert p.stall() is None


async def test_behind_without_progress_for_the_threshold_is_stalled() -> None:
    clock = Clock()
    p = projector(clock)
    await applied(p, 10)
    clock.now += 3600  # idle for an hour: the time behind counts, not the idle time
    p.note_head(15)
    clock.now += 2.9
    assert p.stall() is None
    clock.now += 0.2
    stall = p.stall()
    assert stall is not None
    assert (stall.position, stall.head) == (10, 15)
    assert stall.seconds == pytest.approx(3.1)
    assert stall.describe() == (
        "read model stalled at position 10 for 3 s (store head 15; "
        "event source: Kafka topic user-events at kafka:19092)"
    )


async def test_progress_resets_the_clock_and_catching_up_clears_it() -> None:
    clock = Clock()
    p = projector(clock)
    p.note_head(100)
    clock.now += 2.5
    await applied(p, 40)  # moving: a long catch-up is not a stall
    clock.now += 2.5
    assert p.stall() is None
    clock.now += 1.0
    assert p.stall() is not None
    await applied(p, 100)
    assert p.stall() is None
    p.note_head(100)
    clock.now += 60
    assert p.stall() is None


async def test_wait_unless_stalled_gives_up_at_once_when_stalled() -> None:
    clock = Clock()
    p = projector(clock)
    p.note_head(5)
    clock.now += 10
    reached: Any = await p.wait_unless_stalled(5, within=30)
    assert reached is not True and reached is not False
    assert reached.position == 0
    await applied(p, 5)
    assert await p.wait_unless_stalled(5, within=0) is True
    assert await p.wait_unless_stalled(6, within=0) is False
