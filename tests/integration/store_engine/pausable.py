"""A ClickHouse storage that can be frozen at one chosen step, as SIGSTOP would freeze it.

A `Trap` names a step: a storage call (its operation name, and for inserts
the table) and whether the freeze comes just before the call is sent or just
after it returned, in the heartbeat task or in any other task (the writer,
its inserts, a reload). When the trap fires, EVERY call of that storage waits
at its next step, so the storage looks like a paused process: no heartbeat,
no write, no read, while its clock keeps running. `resume()` lets all go on.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from store_svc.engine import ClickHouseStorage
from store_svc.engine.clickhouse_storage import QueryParams

_HEARTBEAT_TASK = "clickhouse-lease-"


@dataclass(frozen=True, slots=True)
class Trap:
    """Freeze ``when`` the call ``operation`` (on ``table`` if given) runs in the ``path`` task."""

    path: Literal["write", "heartbeat"]
    when: Literal["before", "after"]
    operation: str
    table: str = ""

    def __str__(self) -> str:
        table = f"[{self.table}]" if self.table else ""
        return f"{self.path}:{self.when}:{self.operation}{table}"


class PausableClickHouseStorage(ClickHouseStorage):
    """ClickHouseStorage whose calls all stop once an armed `Trap` is reached."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trap: Trap | None = None
        self.paused = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()

    def arm(self, trap: Trap) -> None:
        self.trap = trap

    def resume(self) -> None:
        self._running.set()

    async def _step(self, operation: str, query: str, when: str) -> None:
        trap = self.trap
        if trap is not None and trap.when == when and trap.operation == operation:
            task = asyncio.current_task()
            in_heartbeat = task is not None and task.get_name().startswith(_HEARTBEAT_TASK)
            if in_heartbeat == (trap.path == "heartbeat") and (
                not trap.table or f".{trap.table} (" in query
            ):
                self.trap = None
                self._running.clear()
                self.paused.set()
        await self._running.wait()

    async def _query(
        self,
        operation: str,
        query: str,
        params: QueryParams,
        *,
        as_bytes: bool = False,
        pool: Any = None,
        time_limit: float | None = None,
    ) -> list[tuple[Any, ...]]:
        await self._step(operation, query, "before")
        rows = await super()._query(
            operation, query, params, as_bytes=as_bytes, pool=pool, time_limit=time_limit
        )
        await self._step(operation, query, "after")
        return rows

    async def _insert(
        self, operation: str, query: str, rows: list[tuple[Any, ...]], query_id: str
    ) -> None:
        await self._step(operation, query, "before")
        await super()._insert(operation, query, rows, query_id)
        await self._step(operation, query, "after")


async def wait_paused(storage: PausableClickHouseStorage, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        await storage.paused.wait()
