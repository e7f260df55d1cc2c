"""abuse_limits: registrations per address, old-password checks per account."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest

from command_svc.abuse_limits import AbuseLimits, CommandLimits
from service_kit import refusals
from service_kit.errors import ServiceError

pytestmark = pytest.mark.unit

LIMITS = AbuseLimits(
    register_per_address=2, register_window=60, password_checks=3, password_window=90
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _refused(call: Awaitable[None]) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        await call
    assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    return exc.value


async def test_registrations_are_limited_per_address_and_reported() -> None:
    clock = Clock()
    limits = CommandLimits.in_process(LIMITS, clock=clock)
    seen: list[tuple[str, int]] = []

    def hook(limit: str, wait: int) -> None:
        seen.append((limit, wait))

    refusals.add_hook(hook)
    try:
        await limits.register("10.0.0.1")
        clock.now += 10
        await limits.register("10.0.0.1")
        error = await _refused(limits.register("10.0.0.1"))
    finally:
        refusals.remove_hook(hook)
    assert "retry in 50 seconds" in error.message
    assert seen == [("register.address", 50)]
    await limits.register("10.0.0.2")  # another address has its own budget
    clock.now += 50
    await limits.register("10.0.0.1")


async def test_old_password_checks_count_before_the_check_and_a_match_clears_them() -> None:
    limits = CommandLimits.in_process(LIMITS, clock=Clock())
    for _ in range(3):
        await limits.password_check("u1")  # counted as they start, whatever their outcome
    await _refused(limits.password_check("u1"))
    await limits.password_matched("u1")
    await limits.password_check("u1")
