"""The mailer's checkpoint: saved only while this instance holds the lease.

On a real SQLite read model (no server): one instance takes the lease and
saves positions; once another instance holds the row, the first one's save
changes nothing and raises ``LeaseLost`` (so it stops sending).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from query_svc.db import Database
from query_svc.mail_transport import FileTransport
from query_svc.mailer import LeaseLost, Mailer
from query_svc.session_tables import SESSION_TABLES
from query_svc.settings import MailSettings
from service_kit.mail_tokens import MailTokens


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'read.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(SESSION_TABLES.metadata.create_all)
        await conn.execute(
            SESSION_TABLES.mail_outbox.insert().values(name="mailer", position=7, holder="")
        )
    yield Database(writer=engine, reader=engine, backend="sqlite")
    await engine.dispose()


def _mailer(database: Database, channel: grpc.aio.Channel, folder: Path) -> Mailer:
    return Mailer(
        database=database,
        channel=channel,
        metadata=list,
        transport=FileTransport(folder, "noreply@localhost"),
        tokens=MailTokens(b"k" * 32),
        settings=MailSettings(),
    )


async def _saved_position(database: Database) -> int:
    table = SESSION_TABLES.mail_outbox
    async with database.read() as conn:
        return int((await conn.execute(table.select())).mappings().one()["position"])


async def test_only_the_lease_holder_saves_its_checkpoint(
    database: Database, tmp_path: Path
) -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:  # never called
        first, second = (_mailer(database, channel, tmp_path / "mail") for _ in range(2))
        assert await first._acquire() == 7
        assert await second._acquire() is None  # the lease is held
        await first._commit(8)
        await first._commit(9)
        assert (await _saved_position(database), first.position) == (9, 9)

        table = SESSION_TABLES.mail_outbox
        async with database.write() as conn:  # the lease expires; the other takes it
            await conn.execute(table.update().values(lease_until=None))
        assert await second._acquire() == 9
        with pytest.raises(LeaseLost):
            await first._commit(10)
        assert await _saved_position(database) == 9
        await second._commit(10)
        assert await _saved_position(database) == 10
