"""Where the outbox relay records how far it got: durably, per topic.

Invariant: a saved position ``P`` for topic ``T`` means every event with a
position <= ``P`` was acknowledged by Kafka (``acks=all``) on ``T``. The relay
saves only after the acknowledgements and never saves a smaller position, so
after a crash it resumes from ``P`` and at worst re-sends the events after it
that Kafka had already acknowledged (the consumers tolerate that: they skip
positions they have applied). Nothing acknowledged by the store is ever
skipped.

Two implementations, one per event storage backend, each kept beside the
events it describes so that a fresh store (new file, new database) starts
with a fresh relay position:

* :class:`FileRelayCheckpoint`: a small JSON file next to the SQLite event
  store, replaced atomically (write a temporary file, fsync it, rename it
  over the old one, fsync the folder), so a crash leaves the old or the new
  position, never a torn file.
* :class:`ClickHouseRelayCheckpoint`: a ``relay_checkpoint`` table in the
  event store's ClickHouse database (``ReplacingMergeTree`` keyed by topic),
  read as ``max(position)``, which is right whether or not the server has
  merged the rows yet. One INSERT per save: the relay saves at most about
  once a second, within ClickHouse's guidance for small inserts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

from store_svc import clickhouse_client
from store_svc.engine import ClickHouseConfig, StorageUnavailable

# Kafka's own rule for topic names; it also makes them safe in a file name.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CLICKHOUSE_TIMEOUT = 10.0


class RelayCheckpoint(Protocol):
    """The relay's durable position for one topic (see the module docstring)."""

    async def load(self) -> int:
        """The saved position (0 if none); raises StorageUnavailable if unreadable."""
        ...

    async def save(self, position: int) -> None:
        """Durably records ``position``; raises StorageUnavailable on failure."""
        ...


def _check_topic(topic: str) -> str:
    if not _TOPIC.match(topic):
        raise ValueError(f"{topic!r} is not a valid Kafka topic name")
    return topic


class FileRelayCheckpoint:
    """The relay position in ``<folder>/relay-<topic>.json``, replaced atomically."""

    def __init__(self, *, folder: Path, topic: str) -> None:
        self.path = folder / f"relay-{_check_topic(topic)}.json"

    async def load(self) -> int:
        return await asyncio.to_thread(self._load)

    async def save(self, position: int) -> None:
        await asyncio.to_thread(self._save, position)

    def _load(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageUnavailable(f"relay checkpoint {self.path}: cannot read: {exc}") from exc
        try:
            position = json.loads(text)["position"]
        except (ValueError, KeyError, TypeError) as exc:
            # Cannot happen with atomic replacement; refuse to guess a position.
            raise StorageUnavailable(f"relay checkpoint {self.path} is corrupt: {exc!r}") from exc
        if not isinstance(position, int) or position < 0:
            raise StorageUnavailable(f"relay checkpoint {self.path}: bad position {position!r}")
        return position

    def _save(self, position: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps({"position": position}).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            # The rename itself must survive a power cut: fsync the folder.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageUnavailable(f"relay checkpoint {self.path}: cannot write: {exc}") from exc


class ClickHouseRelayCheckpoint:
    """The relay position in ``<database>.relay_checkpoint`` (one connection per call).

    A connection per call (about once a second) keeps this independent of the
    storage adapter's pool and heals by itself after a ClickHouse restart.
    """

    def __init__(self, *, settings: ClickHouseConfig, topic: str) -> None:
        self._settings = settings
        self._topic = _check_topic(topic)
        self._table = f"`{settings.database}`.relay_checkpoint"
        self._created = False

    async def _run(self, operation: str, query: str, params: dict[str, Any]) -> list[Any]:
        ch = self._settings
        try:
            async with asyncio.timeout(_CLICKHOUSE_TIMEOUT):
                connection = clickhouse_client.connection(ch, timeout=_CLICKHOUSE_TIMEOUT)
                async with connection as conn, conn.cursor() as cursor:
                    if not self._created:
                        await cursor.execute(
                            f"CREATE TABLE IF NOT EXISTS {self._table} (topic String, "
                            f"position UInt64, saved_at UInt64) "
                            f"ENGINE = ReplacingMergeTree(position) ORDER BY topic"
                        )
                        self._created = True
                    # Parameters as a dict: asynch treats a list as INSERT data.
                    await cursor.execute(query, params)
                    rows: list[Any] = await cursor.fetchall()
                    return rows
        except Exception as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc!r}"
            raise StorageUnavailable(
                f"ClickHouse relay checkpoint {operation} at {ch.host}:{ch.port} {reason}"
            ) from exc

    async def load(self) -> int:
        rows = await self._run(
            "read",
            f"SELECT max(position) FROM {self._table} WHERE topic = %(topic)s",
            {"topic": self._topic},
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def save(self, position: int) -> None:
        await self._run(
            "write",
            f"INSERT INTO {self._table} (topic, position, saved_at) "
            f"SELECT %(topic)s, %(position)s, toUInt64(now())",
            {"topic": self._topic, "position": position},
        )
