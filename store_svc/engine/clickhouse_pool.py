"""The ClickHouse connection pool: asynch's pool, without a PING on every return.

asynch 0.4.0's ``Pool.connection()`` pings each connection as it comes back
(``Connection.is_live``), while holding the pool's lock: one more round trip
to the server per query, and every other checkout and return waits behind it.
A store batch runs five to six queries (the id lookup, three or four INSERTs,
the fence check), so that was five to six extra round trips per batch, in a
row. Measured with ``python -m bench.clickhouse_pool``.

Here a connection goes back without a ping when the work done on it ended
normally. When that work raised or was cancelled (a deadline that fired in
the middle of a query leaves the server's answer unread on the socket), the
connection is aborted and dropped instead: it is never handed out again, and
nothing waits on a peer that may be frozen. The pool keeps asynch's ping on
checkout for a connection idle longer than ``liveness_grace``, so one the
server closed while it sat idle is still found before it is used.

The override uses asynch 0.4.0's pool internals (the version is pinned in
pyproject.toml); ``tests/integration/store_engine/test_clickhouse_pool.py``
fails if they change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import asynch
from asynch.connection import Connection, ConnectionStatus

__all__ = ["ClickHousePool"]


def _abort(conn: Connection) -> None:
    """Drop the socket at once (no graceful close that could wait on the peer)."""
    stream = getattr(getattr(getattr(conn, "_connection", None), "writer", None), "writer", None)
    transport = getattr(stream, "transport", None)
    if transport is not None:
        transport.abort()


class ClickHousePool(asynch.Pool):  # type: ignore[misc]  # asynch ships no stubs
    """A pool whose connections return without a round trip (see the module docstring).

    Invariant: a connection in the free list either completed its last use
    without an error, or has just passed asynch's checkout ping.
    """

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self._sem:
            async with self._lock:
                conn: Connection = await self._acquire_connection()
            clean = False
            try:
                yield conn
                # Opened, and no answer left unread on the socket.
                clean = (
                    conn.status == ConnectionStatus.opened
                    and not conn._connection.is_query_executing
                )
            finally:
                await self._give_back(conn, clean=clean)

    async def _give_back(self, conn: Connection, *, clean: bool) -> None:
        async with self._lock:
            self._acquired_connections.remove(conn)
            if clean:
                self._idle_since[id(conn)] = time.monotonic()
                self._free_connections.append(conn)
                await self._reap_idle_connections()
                return
        # Outside the lock, and no refill here: a caller whose deadline fired
        # must not wait for a new connection to a server that may be frozen;
        # the next checkout opens one if none is free.
        _abort(conn)
        await self._discard_connection(conn)
