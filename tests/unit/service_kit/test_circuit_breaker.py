"""service_kit.circuit_breaker (on a fake clock) and service_kit.deadlines."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from service_kit import deadlines
from service_kit.circuit_breaker import CircuitBreaker
from service_kit.dependency_errors import Dependency, DependencyUnavailable

pytestmark = pytest.mark.unit

DB = Dependency("read model database", "PostgreSQL at db:5432")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(DB, failures_to_open=3, reset_after=2.0, clock=clock)


def state(b: CircuitBreaker) -> str:
    """The state, read afresh (mypy would otherwise narrow the property across calls)."""
    return b.state


def refused(b: CircuitBreaker) -> DependencyUnavailable:
    with pytest.raises(DependencyUnavailable) as caught:
        b.admit()
    return caught.value


def test_opens_after_consecutive_outages_and_refuses_at_once() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.admit() is False
        b.failed("it refused the connection")
    assert state(b) == "closed"
    b.admit()
    b.failed("it refused the connection")
    assert state(b) == "open"
    error = refused(b)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.message == (
        "read model database (PostgreSQL at db:5432) is down; retrying in 2 s "
        "(unavailable: it refused the connection)"
    )
    clock.now += 1.2
    assert "retrying in 1 s" in refused(b).message


def test_a_success_in_between_resets_the_count() -> None:
    b = breaker(Clock())
    for _ in range(5):
        b.admit()
        b.failed("timeout")
        b.admit()
        b.succeeded()
    assert state(b) == "closed"


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failed("timeout")
    clock.now += 2.0
    assert state(b) == "half-open"
    assert b.admit() is True  # the probe
    assert "retrying in 1 s" in refused(b).message  # everyone else, meanwhile
    b.failed("timeout")  # the probe failed: open again for a full period
    assert state(b) == "open"
    assert b.view().retry_in == pytest.approx(2.0)
    clock.now += 2.0
    assert b.admit() is True
    b.succeeded()
    assert state(b) == "closed"
    assert b.admit() is False


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failed("timeout")
    clock.now += 2.5
    assert b.admit() is True
    b.released()  # cancelled, or a bug
    assert b.admit() is True


def test_health_reports_close_an_open_circuit_and_bugs_never_count() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failed("timeout")
    clock.now += 0.5
    view = b.view()
    assert view.state == "open"
    assert view.down_for == pytest.approx(0.5)
    b.succeeded()  # a health check got through
    assert state(b) == "closed" and b.view().down_for == 0.0
    for _ in range(10):
        b.admit()
        assert b.error(TypeError("a bug")) is None
    assert state(b) == "closed"
    assert b.error(ConnectionRefusedError()) is not None
    assert b.view().reason.startswith("it refused the connection")


async def test_budget_is_the_limit_or_what_the_caller_has_left() -> None:
    class Context:
        def __init__(self, remaining: float | None) -> None:
            self.remaining = remaining

        def time_remaining(self) -> float | None:
            return self.remaining

    assert deadlines.budget(2.0) == 2.0
    with deadlines.from_call(Context(30.0)):
        assert deadlines.budget(2.0) == 2.0
    with deadlines.from_call(Context(0.5)):
        assert deadlines.budget(2.0) == pytest.approx(0.45, abs=0.01)
        await asyncio.sleep(0.1)
        assert deadlines.budget(2.0) == pytest.approx(0.35, abs=0.03)
    with deadlines.from_call(Context(0.01)):
        assert deadlines.budget(2.0) == 0.0
    with deadlines.from_call(Context(None)), deadlines.from_call(object()):
        assert deadlines.budget(2.0) == 2.0
    assert deadlines.remaining() is None
