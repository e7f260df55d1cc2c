"""RebuildReadModel: replays into fresh tables and swaps them in; the CLI drives it."""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
import pytest
from cqrs.query.v1 import query_pb2 as q
from sqlalchemy import inspect

from query_svc.rebuilder import Rebuilder
from query_svc.session_tables import SESSION_TABLES
from query_svc.source import StoredEvent
from service_kit.auth import ROLE_USER
from service_kit.limit_store import LIMIT_METADATA
from service_kit.schema_versions import MIGRATIONS_TABLE
from tests.integration.query_svc.conftest import ADMIN, ADMIN_MD, Stack, bearer
from tests.integration.query_svc.support import ListSource, assert_matches_store, dump
from tests.unit.query_svc.events import Log, new_id

pytestmark = pytest.mark.integration


async def rebuild(stack: Stack) -> list[q.RebuildReadModelResponse]:
    call = stack.queries.RebuildReadModel(
        q.RebuildReadModelRequest(), metadata=ADMIN_MD, timeout=120
    )
    return [p async for p in call]


async def table_names(stack: Stack) -> list[str]:
    async with stack.query.database.read() as conn:
        return await conn.run_sync(lambda c: inspect(c).get_table_names())


async def test_a_rebuild_equals_the_live_projection(stack: Stack, password_hash: str) -> None:
    await stack.feeder.populate(users=60, logins_per_user=8, password_hash=password_hash)
    head = await stack.settled()
    assert await stack.query.projector.wait_for(head, within=30)
    live = await dump(stack.query.database)

    for _ in range(2):  # twice: the second swap must not trip over the first one's names
        progress = await rebuild(stack)
        assert progress[0].done == 0 and progress[0].total == head
        assert [p.done for p in progress] == sorted(p.done for p in progress)
        assert [p.finished for p in progress] == [False] * (len(progress) - 1) + [True]
        assert (progress[-1].done, progress[-1].total) == (head, head)
        assert progress[-1].rate > 0
        assert await dump(stack.query.database) == live

    # No *_rebuild left behind; the session and limit tables and the schema version
    # are not rebuilt, just kept.
    kept = {t.name for md in (SESSION_TABLES.metadata, LIMIT_METADATA) for t in md.sorted_tables}
    kept.add(MIGRATIONS_TABLE)
    assert sorted(await table_names(stack)) == sorted({*live, *kept})
    assert stack.query.projector.applied_position == head
    # The live projector goes on from the swapped-in checkpoint.
    uid, position = await stack.feeder.register("after@example.com", password_hash=password_hash)
    r = await stack.queries.GetUser(
        q.GetUserRequest(id=uid, min_position=position), metadata=ADMIN_MD, timeout=5
    )
    assert r.user.email == "after@example.com"
    await assert_matches_store(stack.query.database, stack.feeder, head=position, others=1)


async def test_writes_during_a_rebuild_are_not_lost(stack: Stack, password_hash: str) -> None:
    await stack.feeder.populate(users=40, logins_per_user=10, password_hash=password_hash)
    writing = asyncio.create_task(
        stack.feeder.populate(users=40, logins_per_user=10, password_hash=password_hash)
    )
    progress = await rebuild(stack)
    await writing
    assert progress[-1].finished
    head = await stack.settled()
    assert await stack.query.projector.wait_for(head, within=30)
    await assert_matches_store(stack.query.database, stack.feeder, head=head, others=1)


async def test_an_empty_store_rebuilds_at_once(stack: Stack) -> None:
    await stack.command.stop(grace=0)  # its admin bootstrap would write an event
    progress = await rebuild(stack)
    head = await stack.head()
    assert (progress[-1].done, progress[-1].total, progress[-1].finished) == (head, head, True)


async def test_only_an_admin_may_rebuild_and_one_at_a_time(
    stack: Stack, password_hash: str
) -> None:
    await stack.feeder.populate(users=30, logins_per_user=10, password_hash=password_hash)
    for md, code in [
        ([], grpc.StatusCode.UNAUTHENTICATED),
        (bearer(new_id(), ROLE_USER), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await anext(
                aiter(stack.queries.RebuildReadModel(q.RebuildReadModelRequest(), metadata=md))
            )
        assert exc.value.code() == code

    first = stack.queries.RebuildReadModel(q.RebuildReadModelRequest(), metadata=ADMIN_MD)
    stream = aiter(first)
    await anext(stream)  # the first rebuild has started
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await anext(
            aiter(stack.queries.RebuildReadModel(q.RebuildReadModelRequest(), metadata=ADMIN_MD))
        )
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [p async for p in stream][-1].finished


class StallingSource(ListSource):
    """Delivers its events, then never more: a rebuild on it cannot finish."""

    def __init__(self, events: list[StoredEvent], head: int) -> None:
        super().__init__(events)
        self._head = head

    async def head_position(self) -> int:
        return self._head


async def test_an_abandoned_rebuild_leaves_the_live_tables_alone(stack: Stack) -> None:
    assert await stack.query.projector.wait_for(await stack.settled(), within=10)
    before = await dump(stack.query.database)
    log, uid = Log(), new_id()
    source = StallingSource([log.created(uid, "x@example.com"), log.login(uid)], head=10)
    rebuilder = Rebuilder(
        database=stack.query.database, projector=stack.query.projector, source=source
    )
    run = rebuilder.run()
    first = await anext(run)
    assert (first.done, first.total) == (0, 10)
    assert any(name.endswith("_rebuild") for name in await table_names(stack))
    waiting = asyncio.ensure_future(anext(run))
    await asyncio.sleep(0.1)  # it is now stuck waiting for position 3
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await run.aclose()
    assert not rebuilder.running
    assert not any(name.endswith("_rebuild") for name in await table_names(stack))
    assert await dump(stack.query.database) == before


async def _cli(stack: Stack, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "query_svc.rebuild",
        "--timeout",
        "60",
        env={
            "PATH": os.environ.get("PATH", ""),
            "QUERY_GRPC_TARGET": f"127.0.0.1:{stack.query.server.port}",
            **env,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_the_cli_rebuilds_with_a_token_or_a_login(stack: Stack, password_hash: str) -> None:
    await stack.feeder.populate(users=20, logins_per_user=5, password_hash=password_hash)
    token = ADMIN_MD[0][1].removeprefix("Bearer ")
    code, err = await _cli(stack, {"ADMIN_TOKEN": token})
    assert code == 0, err
    assert "events/s" in err and "read model rebuilt and swapped in" in err

    assert stack.command.bootstrap is not None
    await stack.command.bootstrap
    await stack.query.projector.wait_for(await stack.head(), within=10)
    code, err = await _cli(stack, {"ADMIN_EMAIL": ADMIN.email, "ADMIN_PASSWORD": ADMIN.password})
    assert code == 0, err

    code, err = await _cli(stack, {"ADMIN_EMAIL": ADMIN.email, "ADMIN_PASSWORD": "wrong pass"})
    assert code == 1 and "UNAUTHENTICATED" in err
    code, err = await _cli(stack, {})
    assert code == 2 and "ADMIN_TOKEN" in err
