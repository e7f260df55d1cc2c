"""Every use of the read model's database: bounded in time, behind a breaker, classified.

* **Bounded.** A use (pool checkout or connect, the statements, the commit,
  the return to the pool) ends within its budget: the configured bound for
  reads or writes, cut to the caller's deadline
  (:func:`service_kit.deadlines.budget`). On PostgreSQL the connection is
  terminated when the budget runs out: asyncpg's ``terminate()`` closes the
  socket at once, so the pending statement fails at once and nothing waits
  for a hung server (cancelling the task instead would make SQLAlchemy
  wait two more seconds for a graceful close). On SQLite the waiting task
  is cancelled; a statement waiting for another writer's lock gives up at
  ``busy_timeout``, which :mod:`query_svc.db` sets to the same bound.
* **Guarded.** A :class:`~service_kit.circuit_breaker.CircuitBreaker`
  refuses uses at once while the database is known down. A health probe
  (``probe=True``) always goes through and reports to the breaker.
* **Classified.** An outage (:mod:`service_kit.dependency_errors`) becomes
  a :class:`~service_kit.dependency_errors.DependencyUnavailable` naming the
  database; a bug is re-raised unchanged.

A connection that saw any exception is never handed back to the pool (its
state is unknown): it is terminated and invalidated, in the background, so
a hung close never holds the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service_kit import deadlines
from service_kit.circuit_breaker import CircuitBreaker

log = logging.getLogger(__name__)

_CLEANUP_WAIT = 5.0
"""How long closing the database waits for connections still being discarded."""


class Guard:
    """Bounded, guarded uses of one database's engines (see the module docstring)."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self._cleanups: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def use(
        self, engine: AsyncEngine, *, limit: float, transaction: bool, probe: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection for ``limit`` seconds at most (less if the caller has less).

        With ``transaction`` the block runs in one transaction, committed on
        exit; without, the connection's implicit transaction is rolled back
        when it goes back to the pool.
        """
        if not probe:
            self.breaker.admit()  # raises at once while the database is known down
        budget = deadlines.budget(limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        conn: AsyncConnection | None = None
        terminate: Callable[[], None] | None = None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            if terminate is not None:
                terminate()

        timer: asyncio.TimerHandle | None = None
        scopes: list[asyncio.Timeout] = []
        try:
            conn, driver = await self._checkout(engine, deadline)
            if conn is None:
                expired = True
                raise TimeoutError
            kill = getattr(driver, "terminate", None)
            if callable(kill):  # asyncpg
                terminate = kill
                timer = loop.call_at(deadline, expire)
                scope: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
            else:  # aiosqlite: cancel the waiting task instead
                waiting = asyncio.timeout_at(deadline)
                scopes.append(waiting)
                scope = waiting
            async with scope:
                if transaction:
                    await conn.begin()
                yield conn
                if transaction:
                    await conn.commit()
                await conn.close()
        except BaseException as exc:
            if conn is not None and not conn.closed:
                self._discard(conn, terminate)
            timed_out = expired or any(s.expired() for s in scopes)
            if timed_out and isinstance(exc, Exception | asyncio.CancelledError):
                error = self.breaker.dependency.timed_out(budget)
                self.breaker.failed(error.reason)
                raise error from exc
            if not isinstance(exc, Exception):  # cancelled by our caller: no verdict
                self.breaker.released()
                raise
            unavailable = self.breaker.error(exc)
            if unavailable is None:
                raise
            raise unavailable from exc
        else:
            self.breaker.succeeded()
        finally:
            if timer is not None:
                timer.cancel()

    async def _checkout(
        self, engine: AsyncEngine, deadline: float
    ) -> tuple[AsyncConnection | None, object]:
        """A pooled (or new) connection and its driver connection, or (None, None) when
        ``deadline`` comes first.

        The checkout runs as a task of its own that is not waited for past the
        deadline: a connect to a hung server cancelled halfway makes SQLAlchemy
        close the half-made connection in a shielded wait, which would hold the
        caller. A checkout that completes late is discarded in the background.
        """

        async def checkout() -> tuple[AsyncConnection, object]:
            conn = await engine.connect()
            try:
                return conn, (await conn.get_raw_connection()).driver_connection
            except BaseException:
                self._discard(conn, None)
                raise

        task = asyncio.ensure_future(checkout())
        left = deadline - asyncio.get_running_loop().time()
        try:
            done, _ = await asyncio.wait({task}, timeout=max(left, 0.0))
        except BaseException:  # our caller was cancelled: nobody will use the connection
            done = set()
            self._abandon(task)
            raise
        if task in done:
            return task.result()
        self._abandon(task)
        return None, None

    def _abandon(self, task: asyncio.Future[tuple[AsyncConnection, object]]) -> None:
        task.add_done_callback(self._late_checkout)
        task.cancel()

    def _late_checkout(self, task: asyncio.Future[tuple[AsyncConnection, object]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        conn, driver = task.result()
        kill = getattr(driver, "terminate", None)
        self._discard(conn, kill if callable(kill) else None)

    def _discard(self, conn: AsyncConnection, terminate: Callable[[], None] | None) -> None:
        if terminate is not None:
            with contextlib.suppress(Exception):
                terminate()
        task = asyncio.get_running_loop().create_task(self._invalidate(conn))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    @staticmethod
    async def _invalidate(conn: AsyncConnection) -> None:
        try:
            await conn.invalidate()
        except Exception as exc:
            log.debug("discarding a read model connection failed: %r", exc)

    async def close(self) -> None:
        """Waits (bounded) for connections still being discarded."""
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=_CLEANUP_WAIT)
