"""command_svc against a real store_svc, through real gRPC clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from cqrs.eventstore.v1 import event_store_pb2 as store_pb
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from command_svc import app as command_app
from command_svc.bootstrap_admin import AdminStatus
from service_kit.auth import ROLE_ADMIN, ROLE_USER
from service_kit.timeconv import utcnow

from .conftest import ADMIN, Stack, bearer, command_settings

pytestmark = pytest.mark.integration

PASSWORD = "password-1"


def email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


async def register(stack: Stack, address: str, password: str = PASSWORD) -> pb.RegisterResponse:
    reply: pb.RegisterResponse = await stack.commands.Register(
        pb.RegisterRequest(email=address, password=password), timeout=10
    )
    return reply


async def stored_events(stack: Stack, user_id: str) -> list[store_pb.Event]:
    reply = await stack.events.GetAggregateEvents(
        store_pb.GetAggregateEventsRequest(aggregate_id=user_id),
        metadata=stack.service_md(),
        timeout=10,
    )
    return list(reply.events)


async def failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


@contextlib.asynccontextmanager
async def other_instance(
    stack: Stack, **overrides: object
) -> AsyncIterator[command_grpc.CommandServiceAsyncStub]:
    """A second command_svc on the stack's store, with its own aggregate cache."""
    service = await command_app.start(command_settings(stack.store.server.port, **overrides))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
            yield command_grpc.CommandServiceStub(channel)
    finally:
        await service.stop(grace=1)


async def test_lifecycle_versions_positions_and_tracing(stack: Stack) -> None:
    address = email("life")
    reg = await stack.commands.Register(
        pb.RegisterRequest(email=address.upper(), password=PASSWORD),
        metadata=[("x-correlation-id", "corr-life")],
        timeout=10,
    )
    assert reg.message == "User registered successfully"
    assert reg.version == 1
    me = bearer(reg.id, ROLE_USER, address)
    pw = await stack.commands.ChangePassword(
        pb.ChangePasswordRequest(id=reg.id, old_password=PASSWORD, new_password="password-2"),
        metadata=me,
        timeout=10,
    )
    # The change ended every session: the user signs in again (a token of the new
    # credential version).
    me = bearer(reg.id, ROLE_USER, address, cv=pw.version)
    new_address = email("life2")
    em = await stack.commands.ChangeEmail(
        pb.ChangeEmailRequest(id=reg.id, new_email=new_address), metadata=me, timeout=10
    )
    assert em.email == new_address
    off = await stack.commands.Deactivate(
        pb.DeactivateRequest(id=reg.id, reason="done"), metadata=me, timeout=10
    )
    assert [reg.version, pw.version, em.version, off.version] == [1, 2, 3, 4]
    positions = [reg.position, pw.position, em.position, off.position]
    assert positions == sorted(positions) and len(set(positions)) == 4

    events = await stored_events(stack, reg.id)
    assert [e.event_type for e in events] == [
        "user.created",
        "user.password.changed",
        "user.email.changed",
        "user.deactivated",
    ]
    assert [e.position for e in events] == positions
    assert events[0].correlation_id == "corr-life"
    assert json_format.MessageToDict(events[0].payload)["email"] == address
    causations = {e.causation_id for e in events}
    assert len(causations) == 4 and all(uuid.UUID(c) for c in causations)

    admin = bearer(str(uuid.uuid4()), ROLE_ADMIN)
    refused = await failure(
        stack.commands.ChangeEmail(
            pb.ChangeEmailRequest(id=reg.id, new_email=email("late")), metadata=admin, timeout=10
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_duplicate_email_is_already_exists_case_insensitively(stack: Stack) -> None:
    address = email("dup")
    await register(stack, address)
    err = await failure(register(stack, "  " + address.upper()))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "email: already registered"


async def test_changing_to_a_taken_email_is_already_exists(stack: Stack) -> None:
    taken = email("taken")
    await register(stack, taken)
    mine = await register(stack, email("mine"))
    err = await failure(
        stack.commands.ChangeEmail(
            pb.ChangeEmailRequest(id=mine.id, new_email=taken.upper()),
            metadata=bearer(mine.id, ROLE_USER),
            timeout=10,
        )
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "new_email: already registered"


async def test_released_email_can_be_registered_again(stack: Stack) -> None:
    first = email("moving")
    user = await register(stack, first)
    await stack.commands.ChangeEmail(
        pb.ChangeEmailRequest(id=user.id, new_email=email("moved")),
        metadata=bearer(user.id, ROLE_USER),
        timeout=10,
    )
    assert (await register(stack, first)).version == 1


async def test_twenty_concurrent_registrations_of_one_email_have_one_winner(
    stack: Stack,
) -> None:
    address = email("race")
    results = await asyncio.gather(
        *(register(stack, address) for _ in range(20)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, pb.RegisterResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_ten_concurrent_email_changes_on_one_user_keep_versions_contiguous(
    stack: Stack,
) -> None:
    user = await register(stack, email("busy"))
    me = bearer(user.id, ROLE_USER)
    targets = [email(f"busy{i}") for i in range(10)]
    results = await asyncio.gather(
        *(
            stack.commands.ChangeEmail(
                pb.ChangeEmailRequest(id=user.id, new_email=t), metadata=me, timeout=20
            )
            for t in targets
        ),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, pb.ChangeEmailResponse)]
    errors = [r for r in results if not isinstance(r, pb.ChangeEmailResponse)]
    assert all(
        isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.ABORTED for e in errors
    ), errors
    assert ok, "at least one change must win"
    assert sorted(r.version for r in ok) == list(range(2, 2 + len(ok)))
    events = await stored_events(stack, user.id)
    assert [e.version for e in events] == list(range(1, 2 + len(ok)))
    # The last change's email holds the claim; every earlier one was released.
    last = max(ok, key=lambda r: r.version)
    assert (await failure(register(stack, last.email))).code() == grpc.StatusCode.ALREADY_EXISTS
    for r in ok:
        if r is not last:
            assert (await register(stack, r.email)).version == 1


async def test_wrong_old_password_is_invalid_argument(stack: Stack) -> None:
    user = await register(stack, email("oldpw"))
    err = await failure(
        stack.commands.ChangePassword(
            pb.ChangePasswordRequest(
                id=user.id, old_password="not-it-1", new_password="password-2"
            ),
            metadata=bearer(user.id, ROLE_USER),
            timeout=10,
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "old_password: does not match"
    assert len(await stored_events(stack, user.id)) == 1


async def test_password_change_after_a_snapshot(stack: Stack) -> None:
    # The store snapshots every 3 events here: the hash must survive the snapshot.
    user = await register(stack, email("snap"))
    for _ in range(4):
        await stack.commands.RecordLogin(
            pb.RecordLoginRequest(id=user.id, client_address="127.0.0.1"),
            metadata=stack.service_md(),
            timeout=10,
        )
    for _ in range(100):  # the store takes snapshots in the background
        loaded = await stack.events.LoadAggregate(
            store_pb.LoadAggregateRequest(aggregate_id=user.id),
            metadata=stack.service_md(),
            timeout=10,
        )
        if loaded.snapshot_version:
            break
        await asyncio.sleep(0.01)
    assert loaded.snapshot_state, "the store took no snapshot"
    assert len(loaded.events) < 5
    # The stack's instance has this user cached; one without a cache must
    # read the hash from the snapshot.
    async with other_instance(stack, aggregate_cache_size=0) as commands:
        reply = await commands.ChangePassword(
            pb.ChangePasswordRequest(id=user.id, old_password=PASSWORD, new_password="password-2"),
            metadata=bearer(user.id, ROLE_USER),
            timeout=10,
        )
    assert reply.version == 6


async def test_a_stale_cache_never_reaches_the_caller(stack: Stack) -> None:
    """Two instances on one store change the same user behind each other's cache."""
    address, moved = email("stale"), email("moved")
    user = await register(stack, address)  # the stack caches version 1
    # An admin acts: the password changes below end every session of the user.
    me = bearer(str(uuid.uuid4()), ROLE_ADMIN)

    async def change_email(
        commands: command_grpc.CommandServiceAsyncStub, new: str
    ) -> pb.ChangeEmailResponse:
        request = pb.ChangeEmailRequest(id=user.id, new_email=new)
        reply: pb.ChangeEmailResponse = await commands.ChangeEmail(request, metadata=me, timeout=10)
        return reply

    async def change_password(
        commands: command_grpc.CommandServiceAsyncStub, old: str, new: str
    ) -> pb.ChangePasswordResponse:
        request = pb.ChangePasswordRequest(id=user.id, old_password=old, new_password=new)
        reply: pb.ChangePasswordResponse = await commands.ChangePassword(
            request, metadata=me, timeout=10
        )
        return reply

    async with other_instance(stack) as elsewhere:
        await change_email(elsewhere, moved)
        await change_password(elsewhere, PASSWORD, "password-2")
        # Stale cached hash (PASSWORD): refused, re-verified against the store's.
        reply = await change_password(stack.commands, "password-2", "password-3")
        assert reply.version == 4
        # Accepted on elsewhere's stale version 3: ABORTED, reload, success.
        login = await elsewhere.RecordLogin(
            pb.RecordLoginRequest(id=user.id, client_address="127.0.0.1"),
            metadata=stack.service_md(),
            timeout=10,
        )
        assert login.version == 5
        await change_email(elsewhere, address)
        # The stack's cache still says `moved`: "the same email", but the store disagrees.
        moved_back = await change_email(stack.commands, moved)
        assert (moved_back.version, moved_back.email) == (7, moved)
        await elsewhere.Deactivate(
            pb.DeactivateRequest(id=user.id, reason="done"), metadata=me, timeout=10
        )
        # Active in the stack's cache; the store's state is what is reported.
        err = await failure(change_email(stack.commands, email("late")))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    events = await stored_events(stack, user.id)
    assert [e.version for e in events] == list(range(1, 9))
    assert [e.event_type for e in events] == [
        "user.created",
        "user.email.changed",
        "user.password.changed",
        "user.password.changed",
        "user.login.recorded",
        "user.email.changed",
        "user.email.changed",
        "user.deactivated",
    ]


async def test_authentication_and_ownership(stack: Stack) -> None:
    user = await register(stack, email("owner"))
    request = pb.ChangeEmailRequest(id=user.id, new_email=email("owner2"))
    err = await failure(stack.commands.ChangeEmail(request, timeout=10))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    other = bearer(str(uuid.uuid4()), ROLE_USER)
    err = await failure(stack.commands.ChangeEmail(request, metadata=other, timeout=10))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = bearer(str(uuid.uuid4()), ROLE_ADMIN)
    assert (await stack.commands.ChangeEmail(request, metadata=admin, timeout=10)).version == 2
    err = await failure(
        stack.commands.RecordLogin(pb.RecordLoginRequest(id=user.id), metadata=admin, timeout=10)
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_idempotency_key_returns_the_first_result(stack: Stack) -> None:
    request = pb.RegisterRequest(email=email("idem"), password=PASSWORD)
    md = [("idempotency-key", f"key-{uuid.uuid4()}")]
    first, second = await asyncio.gather(
        stack.commands.Register(request, metadata=md, timeout=10),
        stack.commands.Register(request, metadata=md, timeout=10),
    )
    third = await stack.commands.Register(request, metadata=md, timeout=10)
    assert first == second == third
    assert len(await stored_events(stack, first.id)) == 1


async def test_admin_bootstrap_registered_the_admin_once(stack: Stack) -> None:
    assert stack.command.bootstrap is not None
    outcome = await stack.command.bootstrap
    assert outcome.status == AdminStatus.CREATED and outcome.usable
    [created] = await stored_events(stack, outcome.user_id)
    payload = json_format.MessageToDict(created.payload)
    assert (payload["email"], payload["role"]) == (ADMIN.email, ROLE_ADMIN)
    # A second instance finds the email claimed, writes nothing, and checks the account.
    again = await command_app.start(command_settings(stack.store.server.port, admin=ADMIN))
    try:
        assert again.bootstrap is not None
        second = await again.bootstrap
        assert (second.status, second.user_id) == (AdminStatus.READY, outcome.user_id)
        assert second.usable
    finally:
        await again.stop(grace=0)


async def test_store_down_is_unavailable(stack: Stack) -> None:
    # A port nothing listens on: the store is "down" for this instance.
    down = await command_app.start(command_settings(1, store_timeout=2.0))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{down.server.port}") as channel:
            stub = command_grpc.CommandServiceStub(channel)
            err = await failure(
                stub.Register(
                    pb.RegisterRequest(email=email("down"), password=PASSWORD), timeout=10
                )
            )
    finally:
        await down.stop(grace=0)
    assert err.code() == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
async def costly(stack: Stack) -> AsyncIterator[command_app.CommandService]:
    service = await command_app.start(command_settings(stack.store.server.port, bcrypt_cost=10))
    yield service
    await service.stop(grace=1)


async def test_health_answers_quickly_during_a_bcrypt_burst(
    costly: command_app.CommandService,
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{costly.server.port}") as channel:
        commands = command_grpc.CommandServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        started = utcnow()
        burst = asyncio.gather(
            *(
                commands.Register(
                    pb.RegisterRequest(email=email("burst"), password=PASSWORD), timeout=60
                )
                for _ in range(20)
            )
        )
        latencies = []
        await asyncio.sleep(0.05)  # let the burst reach the hashers
        while not burst.done():
            t0 = time.perf_counter()
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            latencies.append(time.perf_counter() - t0)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            await asyncio.sleep(0.02)
        replies = await burst
    assert len({r.id for r in replies}) == 20
    assert len(latencies) >= 3, f"burst too short to measure ({utcnow() - started})"
    assert max(latencies) < 0.25, f"health check took {max(latencies):.3f}s during the burst"
    assert Counter(r.version for r in replies) == {1: 20}
