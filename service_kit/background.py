"""A background loop that runs until stopped and restarts its body after a failure.

Feeds and senders that follow the event store (revocation views, the
mailer) are the same loop: run a body that follows a subscription; when it
fails, wait (exponential backoff, capped), then run it again; stop by
cancellation. One implementation serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Restarting"]

log = logging.getLogger(__name__)


class Restarting:
    """Runs ``body`` in a task until :meth:`stop`; after a failure, again after a pause.

    ``body`` returning normally also restarts it (the subscription ended).
    The pause doubles from ``first_pause`` up to ``max_pause`` and goes back
    to ``first_pause`` once a run has made progress (``progressed()``).
    ``describe`` turns a failure into a log line (default: logged with its
    traceback).
    """

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        *,
        first_pause: float = 0.05,
        max_pause: float = 5.0,
        describe: Callable[[Exception], str | None] = lambda exc: None,
    ) -> None:
        self._name = name
        self._body = body
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._describe = describe
        self._pause = first_pause
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def progressed(self) -> None:
        """The current run got somewhere: the next failure waits the shortest pause."""
        self._pause = self._first_pause

    async def _run(self) -> None:
        while True:
            try:
                await self._body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                said = self._describe(exc)
                if said is None:
                    log.exception("%s failed; retrying in %.2fs", self._name, self._pause)
                else:
                    log.warning("%s: %s; retrying in %.2fs", self._name, said, self._pause)
            await asyncio.sleep(self._pause)
            self._pause = min(self._pause * 2, self._max_pause)
