"""The caller's deadline, carried to every dependency call a request makes.

``service_kit.errors.unary`` (and ``streaming``) record when the gRPC
caller gives up, in a context variable of the call's task. A dependency
call then takes :func:`budget` seconds: its own configured bound, cut to
the time the caller has left minus :data:`MARGIN`, so the service answers
(UNAVAILABLE, naming what did not answer) before the caller's deadline
expires instead of the caller seeing DEADLINE_EXCEEDED with no reason.
Work outside a call (the projector, the relay) has no caller deadline and
gets its configured bound.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import grpc

from service_kit.service_error import ServiceError

MARGIN: Final = 0.05
"""Seconds kept to send the answer before the caller's deadline."""

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "caller_deadline", default=None
)


@contextmanager
def from_call(context: Any) -> Iterator[None]:
    """Within the block, :func:`budget` is bounded by the gRPC call's deadline."""
    time_remaining = getattr(context, "time_remaining", None)
    remaining = time_remaining() if callable(time_remaining) else None
    if remaining is None:
        yield
        return
    token = _deadline.set(asyncio.get_running_loop().time() + float(remaining))
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def narrowed(seconds: float) -> Iterator[None]:
    """Within the block, the deadline is at most ``seconds`` from now (a service's own
    bound on a whole request, e.g. a command, tighter than its caller's)."""
    deadline = asyncio.get_running_loop().time() + seconds
    current = _deadline.get()
    token = _deadline.set(deadline if current is None else min(current, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds until the current caller gives up (None outside a call with a deadline)."""
    deadline = _deadline.get()
    if deadline is None:
        return None
    return deadline - asyncio.get_running_loop().time()


def budget(limit: float) -> float:
    """What a dependency call may take: ``limit``, or less when the caller's deadline is
    nearer (never negative)."""
    left = remaining()
    if left is None:
        return limit
    return max(min(limit, left - MARGIN), 0.0)


@asynccontextmanager
async def bounded(limit: float, *, what: str, then: str = "retry later") -> AsyncIterator[float]:
    """Runs the block within ``limit`` seconds (or the caller's nearer deadline); yields
    that budget. Dependency calls inside see the narrowed deadline, so they give up
    first and say which dependency did not answer; if the block still overruns (e.g.
    queued for CPU), it ends with UNAVAILABLE "<what> did not complete within N s;
    <then>"."""
    seconds = budget(limit)
    scope = asyncio.timeout(seconds)
    try:
        with narrowed(seconds):
            async with scope:
                yield seconds
    except TimeoutError:
        if not scope.expired():
            raise
        raise ServiceError(
            grpc.StatusCode.UNAVAILABLE, f"{what} did not complete within {seconds:.1f}s; {then}"
        ) from None
