"""request_limits: sliding windows per key, in one process."""

from __future__ import annotations

import pytest

from service_kit.request_limits import SlidingWindow

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_allows_up_to_the_limit_then_says_how_long_to_wait() -> None:
    w = SlidingWindow(limit=3, window=60)
    for t in (0.0, 10.0, 20.0):
        assert w.retry_after("k", now=t) == 0
        w.record("k", now=t)
    assert w.retry_after("k", now=25.0) == pytest.approx(35.0)  # 0 + 60 - 25
    assert w.retry_after("k", now=60.0) == 0  # the first failure left the window
    assert w.retry_after("other", now=25.0) == 0


def test_window_slides_failure_by_failure() -> None:
    w = SlidingWindow(limit=2, window=10)
    w.record("k", now=0)
    w.record("k", now=5)
    assert w.retry_after("k", now=9) == pytest.approx(1)
    w.record("k", now=11)  # 0 expired; 5 and 11 remain
    assert w.retry_after("k", now=12) == pytest.approx(3)


def test_reset_forgets_a_key() -> None:
    w = SlidingWindow(limit=1, window=10)
    w.record("k", now=0)
    assert w.retry_after("k", now=1) > 0
    w.reset("k")
    assert w.retry_after("k", now=1) == 0


def test_expired_keys_are_dropped_and_memory_is_bounded() -> None:
    w = SlidingWindow(limit=2, window=10, max_keys=3)
    for i in range(5):
        w.record(f"k{i}", now=float(i))
    assert len(w) == 3  # the two least recent were evicted
    w.retry_after("k4", now=100)
    assert len(w) == 2


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        SlidingWindow(limit=0, window=10)
