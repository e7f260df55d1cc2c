"""Correlation ids: taken from the call (capped), else a fresh random UUID v4."""

from __future__ import annotations

import contextvars
import uuid
from typing import Any

from service_kit import metadata


class _Context:
    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self.md = md
        self.asked = 0

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        self.asked += 1
        return self.md


def _in_fresh_context(fn: Any) -> Any:
    return contextvars.copy_context().run(fn)


def test_ids_come_from_the_call_and_are_capped() -> None:
    ctx = _Context((("x-correlation-id", "c" * 300), ("x-causation-id", "cause")))
    correlation, causation = _in_fresh_context(lambda: metadata.correlation_ids(ctx))
    assert correlation == "c" * 128 and causation == "cause"


def test_a_call_without_ids_gets_a_fresh_uuid4() -> None:
    ids = {_in_fresh_context(lambda: metadata.correlation_ids(_Context(()))[0]) for _ in range(50)}
    assert len(ids) == 50
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_the_interceptors_copy_is_used_in_the_calls_context() -> None:
    ctx = _Context((("x-correlation-id", "from-context"),))

    def call() -> tuple[str, str]:
        metadata.remember_call_metadata((("x-correlation-id", "remembered"),))
        return metadata.correlation_ids(ctx)

    assert _in_fresh_context(call) == ("remembered", "")
    assert ctx.asked == 0
    # Another call's context does not see it.
    assert _in_fresh_context(lambda: metadata.correlation_ids(ctx))[0] == "from-context"
