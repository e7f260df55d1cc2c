"""Sessions and the admin roster against real store, command and query services (gRPC).

What the end-to-end suite cannot set up (it has one admin, and no API makes
another): a second admin, deactivated, loses admin powers at once; and two
admins deactivating each other at the same time leave one of them active.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.eventstore.v1 import event_store_pb2 as es
from cqrs.query.v1 import query_pb2 as q

import domain
from command_svc.store_client import Trace
from tests.integration.query_svc.conftest import ADMIN, PASSWORD, Stack

pytestmark = pytest.mark.integration

TRACE = Trace("sessions-test", "sessions-test")


async def admin_session(stack: Stack, email: str) -> tuple[str, list[tuple[str, str]]]:
    """A second admin (registered on the command side, as the bootstrap does) and its token."""
    out = await stack.command.handler.register(
        email=email, password=PASSWORD, trace=TRACE, role=domain.ROLE_ADMIN
    )
    answer = await stack.queries.Login(
        q.LoginRequest(email=email, password=PASSWORD),
        metadata=[("x-min-position", str(out.position))],
        timeout=10,
    )
    return out.user_id, [("authorization", f"Bearer {answer.token}")]


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code()


async def test_a_deactivated_admin_loses_admin_powers_at_once(stack: Stack) -> None:
    await stack.settled()
    boss_id, boss = await admin_session(stack, "boss2@example.com")
    other_id, other = await admin_session(stack, "other2@example.com")
    assert (await stack.queries.ListUsers(q.ListUsersRequest(), metadata=other, timeout=5)).count
    await stack.commands.Deactivate(cmd.DeactivateRequest(id=other_id), metadata=boss, timeout=10)
    started = time.monotonic()
    while True:  # every service refuses the deactivated admin's token within a second
        try:
            await stack.queries.ListUsers(q.ListUsersRequest(), metadata=other, timeout=5)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            break
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.02)
    assert (
        await code_of(stack.events.CountEvents(es.CountEventsRequest(), metadata=other, timeout=5))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await code_of(
            stack.commands.Activate(cmd.ActivateRequest(id=other_id), metadata=other, timeout=5)
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    # The other admin brings it back; its old token stays dead, a new login works.
    await stack.commands.Activate(cmd.ActivateRequest(id=other_id), metadata=boss, timeout=10)
    assert (
        await code_of(stack.queries.ListUsers(q.ListUsersRequest(), metadata=other, timeout=5))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert boss_id != other_id


async def test_admins_deactivating_each_other_at_once_leave_one_active(stack: Stack) -> None:
    await stack.settled()
    # The bootstrapped admin leaves first, so that only these two remain.
    a_id, a = await admin_session(stack, "race-a@example.com")
    b_id, b = await admin_session(stack, "race-b@example.com")
    root = (await stack.command.bootstrap) if stack.command.bootstrap else None
    assert root is not None
    await stack.commands.Deactivate(cmd.DeactivateRequest(id=root.user_id), metadata=a, timeout=10)
    for _ in range(3):  # a few rounds; each leaves one of the two
        outcomes = await asyncio.gather(
            stack.commands.Deactivate(cmd.DeactivateRequest(id=b_id), metadata=a, timeout=10),
            stack.commands.Deactivate(cmd.DeactivateRequest(id=a_id), metadata=b, timeout=10),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(refused) == 1, outcomes
        assert refused[0].code() in (
            grpc.StatusCode.FAILED_PRECONDITION,  # "the last active admin"
            grpc.StatusCode.UNAUTHENTICATED,  # its caller was deactivated first
        )
        states = [(await stack.command.store.load(uid)).state for uid in (a_id, b_id)]
        active = [s for s in states if s is not None and s.is_active]
        assert len(active) == 1
        # Put the deactivated one back for the next round, with fresh tokens.
        survivor = active[0]
        gone = a_id if survivor.user_id == b_id else b_id
        survivor_token = await relogin(stack, survivor.email)
        await stack.commands.Activate(
            cmd.ActivateRequest(id=gone), metadata=survivor_token, timeout=10
        )
        a = await relogin(stack, "race-a@example.com")
        b = await relogin(stack, "race-b@example.com")
    assert ADMIN.email  # the bootstrapped admin stayed deactivated throughout


async def relogin(stack: Stack, email: str) -> list[tuple[str, str]]:
    answer = await stack.queries.Login(
        q.LoginRequest(email=email, password=PASSWORD),
        metadata=[("x-min-position", str(await stack.head()))],
        timeout=10,
    )
    return [("authorization", f"Bearer {answer.token}")]
