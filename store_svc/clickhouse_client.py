"""One way to open a short-lived ClickHouse connection outside the storage adapter's pool
(the relay checkpoint, the readiness probe): every wait of it bounded."""

from __future__ import annotations

from typing import Any

import asynch

from store_svc.engine import ClickHouseConfig


def connection(config: ClickHouseConfig, *, timeout: float, database: str = "") -> Any:
    """An ``asynch`` connection to ``config``'s server (use it as ``async with``);
    connecting and each exchange wait ``timeout`` seconds at most. ``database``:
    ``config.database`` unless given (``"default"`` works before that one exists)."""
    return asynch.connect(
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password,
        database=database or config.database,
        connect_timeout=timeout,
        send_receive_timeout=timeout,
    )
