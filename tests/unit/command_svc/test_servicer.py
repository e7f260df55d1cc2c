"""CommandServiceServicer over a real grpc.aio server, with an in-memory store.

Checks what the servicer adds to the handlers: request checks, status
mapping, tracing ids, idempotency keys and the auth table.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as pb_grpc
from google.protobuf.message import Message

from command_svc.handlers import CommandHandler
from command_svc.idempotency import IdempotencyCache
from command_svc.servicer import SERVICE_NAME, CommandServiceServicer
from service_kit.auth import ROLE_ADMIN, ROLE_SERVICE, ROLE_USER
from service_kit.interceptors import service_interceptors
from service_kit.server import Registration, RunningServer, start_server
from tests import auth_support

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

VERIFIER = auth_support.TEST_TOKENS.verifier()
PASSWORD = "password-1"


def bearer(subject: str, role: str) -> list[tuple[str, str]]:
    return auth_support.bearer(subject, role)


SERVICE = bearer("query_svc", ROLE_SERVICE)
ADMIN = bearer(str(uuid.uuid4()), ROLE_ADMIN)


class Env:
    def __init__(
        self, server: RunningServer, store: FakeStore, stub: pb_grpc.CommandServiceAsyncStub
    ):
        self.server, self.store, self.stub = server, store, stub

    async def register(self, email: str) -> str:
        reply = await self.stub.Register(
            pb.RegisterRequest(email=email, password=PASSWORD), timeout=5
        )
        return reply.id


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[Env]:
    store = FakeStore()
    handler = CommandHandler(store=store, hasher=FakeHasher(), retry_pause=0)
    idempotency: IdempotencyCache[Message] = IdempotencyCache()
    server = await start_server(
        "127.0.0.1:0",
        [
            Registration(
                SERVICE_NAME,
                pb_grpc.add_CommandServiceServicer_to_server,
                CommandServiceServicer(handler, idempotency),
            )
        ],
        interceptors=service_interceptors(
            SERVICE_NAME, VERIFIER, revocations=None, traced_as="command_svc"
        ),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Env(server, store, pb_grpc.CommandServiceStub(channel))
    await server.stop(0)


async def status_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code(), info.value.details() or ""


async def test_register_reply(env: Env) -> None:
    reply = await env.stub.Register(
        pb.RegisterRequest(email="reply@example.com", password=PASSWORD), timeout=5
    )
    assert uuid.UUID(reply.id)
    assert reply.message == "User registered successfully"
    assert reply.version == 1
    assert reply.position == env.store.position


async def test_correlation_id_is_passed_and_each_command_gets_its_own_id(env: Env) -> None:
    await env.stub.Register(
        pb.RegisterRequest(email="trace1@example.com", password=PASSWORD),
        metadata=[("x-correlation-id", "corr-42"), ("x-causation-id", "ignored")],
        timeout=5,
    )
    first = env.store.appends[-1].trace
    assert first.correlation_id == "corr-42"
    assert uuid.UUID(first.causation_id)
    await env.stub.Register(
        pb.RegisterRequest(email="trace2@example.com", password=PASSWORD), timeout=5
    )
    second = env.store.appends[-1].trace
    assert uuid.UUID(second.correlation_id)  # generated when missing
    assert second.causation_id != first.causation_id


@pytest.mark.parametrize(
    ("request_", "code", "prefix"),
    [
        (pb.RegisterRequest(email="bad", password=PASSWORD), "INVALID_ARGUMENT", "email:"),
        (pb.RegisterRequest(email="a@example.com", password="x"), "INVALID_ARGUMENT", "password:"),
    ],
)
async def test_register_validation_is_invalid_argument(
    env: Env, request_: pb.RegisterRequest, code: str, prefix: str
) -> None:
    got, details = await status_of(env.stub.Register(request_, timeout=5))
    assert got.name == code
    assert details.startswith(prefix)


async def test_duplicate_email_is_already_exists(env: Env) -> None:
    await env.register("dup@example.com")
    code, details = await status_of(
        env.stub.Register(pb.RegisterRequest(email="DUP@example.com", password=PASSWORD), timeout=5)
    )
    assert (code, details) == (grpc.StatusCode.ALREADY_EXISTS, "email: already registered")


async def test_malformed_id_is_invalid_argument_for_admins(env: Env) -> None:
    code, details = await status_of(
        env.stub.ChangeEmail(
            pb.ChangeEmailRequest(id="not-a-uuid", new_email="x@example.com"),
            metadata=ADMIN,
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("id:")


async def test_unknown_user_is_not_found(env: Env) -> None:
    code, _ = await status_of(
        env.stub.Deactivate(pb.DeactivateRequest(id=str(uuid.uuid4())), metadata=ADMIN, timeout=5)
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_owner_flow_and_status_mapping(env: Env) -> None:
    uid = await env.register("owner@example.com")
    me = bearer(uid, ROLE_USER)
    code, details = await status_of(
        env.stub.ChangePassword(
            pb.ChangePasswordRequest(id=uid, old_password="wrong-one", new_password="password-2"),
            metadata=me,
            timeout=5,
        )
    )
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "old_password: does not match")
    changed = await env.stub.ChangePassword(
        pb.ChangePasswordRequest(id=uid, old_password=PASSWORD, new_password="password-2"),
        metadata=me,
        timeout=5,
    )
    assert (changed.id, changed.version, changed.message) == (
        uid,
        2,
        "Password changed successfully",
    )
    email = await env.stub.ChangeEmail(
        pb.ChangeEmailRequest(id=uid, new_email="Owner2@Example.com"), metadata=me, timeout=5
    )
    assert (email.email, email.version, email.message) == (
        "owner2@example.com",
        3,
        "Email changed successfully",
    )
    gone = await env.stub.Deactivate(
        pb.DeactivateRequest(id=uid, reason="bye"), metadata=me, timeout=5
    )
    assert (gone.version, gone.message) == (4, "User deactivated successfully")
    code, _ = await status_of(
        env.stub.ChangeEmail(
            pb.ChangeEmailRequest(id=uid, new_email="o3@example.com"), metadata=me, timeout=5
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_record_login_is_for_services_only(env: Env) -> None:
    uid = await env.register("login@example.com")
    for md in (None, bearer(uid, ROLE_USER), ADMIN):
        code, _ = await status_of(
            env.stub.RecordLogin(pb.RecordLoginRequest(id=uid), metadata=md, timeout=5)
        )
        assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    reply = await env.stub.RecordLogin(
        pb.RecordLoginRequest(id=uid, client_address="10.0.0.1"), metadata=SERVICE, timeout=5
    )
    assert (reply.id, reply.version) == (uid, 2)


async def test_someone_elses_user_is_permission_denied(env: Env) -> None:
    victim = await env.register("victim@example.com")
    attacker = bearer(str(uuid.uuid4()), ROLE_USER)
    code, _ = await status_of(
        env.stub.ChangeEmail(
            pb.ChangeEmailRequest(id=victim, new_email="mine@example.com"),
            metadata=attacker,
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_idempotency_key_returns_the_first_reply(env: Env) -> None:
    request = pb.RegisterRequest(email="idem@example.com", password=PASSWORD)
    md = [("idempotency-key", "key-1")]
    first = await env.stub.Register(request, metadata=md, timeout=5)
    second = await env.stub.Register(request, metadata=md, timeout=5)
    assert first == second
    code, details = await status_of(
        env.stub.Register(
            pb.RegisterRequest(email="other@example.com", password=PASSWORD),
            metadata=md,
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("idempotency-key:")
    code, details = await status_of(
        env.stub.Register(request, metadata=[("idempotency-key", "k" * 129)], timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("idempotency-key:")


async def test_store_down_is_unavailable(env: Env) -> None:
    uid = await env.register("down@example.com")
    env.store.unavailable = True
    try:
        code, _ = await status_of(
            env.stub.Deactivate(pb.DeactivateRequest(id=uid), metadata=ADMIN, timeout=5)
        )
    finally:
        env.store.unavailable = False
    assert code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(("command_timeout", "caller_timeout"), [(0.3, 5.0), (10.0, 0.4)])
async def test_a_hung_store_is_unavailable_within_the_commands_bound(
    command_timeout: float, caller_timeout: float
) -> None:
    """The command's own bound, or the caller's deadline when nearer: UNAVAILABLE with
    a reason, never the caller's DEADLINE_EXCEEDED."""
    store = FakeStore(hung=True)
    handler = CommandHandler(store=store, hasher=FakeHasher(), retry_pause=0)
    servicer = CommandServiceServicer(handler, command_timeout=command_timeout)
    server = await start_server(
        "127.0.0.1:0",
        [Registration(SERVICE_NAME, pb_grpc.add_CommandServiceServicer_to_server, servicer)],
        interceptors=service_interceptors(
            SERVICE_NAME, VERIFIER, revocations=None, traced_as="command_svc"
        ),
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.CommandServiceStub(channel)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Register(
                    pb.RegisterRequest(email="hung@example.com", password=PASSWORD),
                    timeout=caller_timeout,
                )
            took = loop.time() - started
    finally:
        await server.stop(grace=0)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Register did not complete within" in (caught.value.details() or "")
    assert took < min(command_timeout, caller_timeout) + 0.3
