"""rate_limit: sliding windows of failed logins per email and per address."""

from __future__ import annotations

import pytest

from query_svc.rate_limit import LoginRateLimiter, SlidingWindow
from query_svc.settings import LoginLimits

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


def test_login_limiter_counts_email_and_address_separately() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(
        LoginLimits(max_failures_per_email=2, max_failures_per_address=3, window_seconds=300),
        clock=clock,
    )
    limiter.failed(email="a@x.io", address="10.0.0.1")
    limiter.failed(email="a@x.io", address="10.0.0.1")
    assert limiter.retry_after(email="a@x.io", address="10.0.0.9") == 300
    assert limiter.retry_after(email="b@x.io", address="10.0.0.1") == 0
    limiter.failed(email="b@x.io", address="10.0.0.1")
    clock.now += 100.5
    # the address is now over its budget of 3 for any email
    assert limiter.retry_after(email="c@x.io", address="10.0.0.1") == 200
    clock.now += 200
    assert limiter.retry_after(email="c@x.io", address="10.0.0.1") == 0


def test_success_clears_the_email_but_not_the_address() -> None:
    limiter = LoginRateLimiter(
        LoginLimits(max_failures_per_email=1, max_failures_per_address=1, window_seconds=60),
        clock=Clock(),
    )
    limiter.failed(email="a@x.io", address="10.0.0.1")
    limiter.succeeded(email="a@x.io")
    assert limiter.retry_after(email="a@x.io", address="") == 0
    assert limiter.retry_after(email="a@x.io", address="10.0.0.1") == 60


def test_empty_keys_are_not_limited() -> None:
    limiter = LoginRateLimiter(
        LoginLimits(max_failures_per_email=1, max_failures_per_address=1, window_seconds=60),
        clock=Clock(),
    )
    limiter.failed(email="", address="")
    assert limiter.retry_after(email="", address="") == 0


def test_wait_is_rounded_up_to_a_whole_second() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(
        LoginLimits(max_failures_per_email=1, max_failures_per_address=9, window_seconds=10),
        clock=clock,
    )
    limiter.failed(email="a@x.io", address="")
    clock.now += 9.99
    assert limiter.retry_after(email="a@x.io", address="") == 1
