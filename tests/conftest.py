"""Run-wide test hooks.

A test that hangs is ended by pytest-timeout (``timeout`` in pyproject.toml),
which shows where the *thread* was: for an async test that is the event loop's
``select``, which says nothing. So a test that timed out also gets the stack of
every unfinished asyncio task attached to its report: the await that never
returned is there.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Generator

import pytest


def _await_chain(coro: object) -> list[str]:
    """Where a suspended coroutine waits: each frame of its ``await`` chain."""
    lines: list[str] = []
    seen = 0
    while coro is not None and seen < 40:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        frame = frame or getattr(coro, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
    if coro is not None:
        lines.append(f"  waiting on {coro!r}")
    return lines


def _pending_task_stacks() -> str:
    out: list[str] = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Task) and not obj.done():
            out.append(f"--- {obj.get_name()}: {obj.get_coro()!r}")
            out.extend(_await_chain(obj.get_coro()))
    return "\n".join(out) or "(no unfinished asyncio task)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.failed
        and call.excinfo is not None
        and "from pytest-timeout" in str(call.excinfo.value)
    ):
        report.sections.append(("unfinished asyncio tasks", _pending_task_stacks()))
    return report
