"""The visibility rule the fences make (pure: the SQL condition, checked by evaluating it)."""

from __future__ import annotations

import re

from store_svc.engine.clickhouse_fencing import Fence, visible_rows

_MAX = 18446744073709551615


def evaluate(condition: str, epoch: int, position: int) -> bool:
    """Evaluates the generated ``position <= multiIf(epoch < e1, b1, ..., MAX)``."""
    if condition == "1":
        return True
    match = re.fullmatch(r"position <= multiIf\((.*), (\d+)\)", condition)
    assert match is not None, condition
    bound = int(match.group(2))
    for epoch_text, bound_text in re.findall(r"epoch < (\d+), (\d+)", match.group(1)):
        if epoch < int(epoch_text):
            bound = int(bound_text)
            break
    return position <= bound


def visible(fences: list[Fence], epoch: int, position: int) -> bool:
    """The rule itself: no fence of a later epoch starts below the row."""
    return all(position <= f.start_position for f in fences if f.epoch > epoch)


def test_no_fence_hides_nothing() -> None:
    assert visible_rows([]) == "1"


def test_rows_of_a_superseded_epoch_above_the_successors_fence_are_hidden() -> None:
    fences = [Fence(1, 0), Fence(2, 10), Fence(3, 25)]
    condition = visible_rows(fences)
    assert evaluate(condition, 1, 10)  # acknowledged by 1 before 2 took over
    assert not evaluate(condition, 1, 11)  # landed after 2's fence
    assert evaluate(condition, 2, 25)
    assert not evaluate(condition, 2, 26)
    assert evaluate(condition, 3, 10_000)  # the current epoch is not cut
    assert evaluate(condition, 0, 0) and not evaluate(condition, 0, 1)  # rows before fencing


def test_the_condition_agrees_with_the_rule_for_any_fences() -> None:
    fence_sets = [
        [Fence(1, 0)],
        [Fence(1, 5), Fence(2, 5), Fence(4, 9)],
        [Fence(3, 7), Fence(5, 4), Fence(6, 12)],  # a late fence below an earlier one
        [Fence(2, 3), Fence(2, 1), Fence(7, 3)],
    ]
    for fences in fence_sets:
        condition = visible_rows(fences)
        for epoch in range(0, 9):
            for position in range(0, 15):
                assert evaluate(condition, epoch, position) == visible(fences, epoch, position), (
                    fences,
                    epoch,
                    position,
                )
