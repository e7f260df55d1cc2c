"""Small in-process gRPC backends with canned answers, served by real grpc.aio servers.

They implement a few methods of the real generated services (the rest are
UNIMPLEMENTED, as a real server would say) and record the metadata each
call arrived with, so the tests can see what the gateway forwarded.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from cqrs.command.v1 import command_pb2
from cqrs.common.v1 import user_status_pb2
from cqrs.eventstore.v1 import event_store_pb2
from cqrs.query.v1 import query_pb2

from service_kit import readiness
from service_kit.auth import ROLE_SERVICE, TokenVerifier, bearer_token
from service_kit.errors import ServiceError
from service_kit.server import Registration

Context = Any  # grpc.aio.ServicerContext; the stubs make it generic


class Recorder:
    """Keeps the invocation metadata of every call, by method name."""

    def __init__(self) -> None:
        self.seen: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.requests: dict[str, list[Any]] = defaultdict(list)
        self.deadlines: dict[str, list[float | None]] = defaultdict(list)
        self.open_streams = 0

    def record(self, method: str, context: Context) -> dict[str, str]:
        metadata = {item[0]: item[1] for item in context.invocation_metadata()}
        self.seen[method].append(metadata)
        self.deadlines[method].append(context.time_remaining())
        return metadata


def _registration(
    service: str,
    servicer: object,
    methods: dict[str, tuple[bool, type[Any], type[Any]]],
) -> Registration:
    handlers = {}
    for name, (streaming, request, response) in methods.items():
        factory: Callable[..., grpc.RpcMethodHandler[Any, Any]] = (
            grpc.unary_stream_rpc_method_handler
            if streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[name] = factory(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    generic = grpc.method_handlers_generic_handler(service, handlers)

    def add(_servicer: Any, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((generic,))

    return Registration(service, add, servicer)


def _user(user_id: str) -> query_pb2.User:
    user = query_pb2.User(
        id=user_id, email=f"{user_id}@example.com", role="user", version=3, login_count=0
    )
    user.status = user_status_pb2.USER_STATUS_ACTIVE
    user.created_at.FromJsonString("2025-10-25T19:57:00Z")
    return user


class FakeQuery(Recorder):
    SERVICE = "cqrs.query.v1.QueryService"

    def __init__(self) -> None:
        super().__init__()
        # What its readiness checks find (the tests change them).
        self.database = readiness.ok()
        self.projector = readiness.ok(position=7, head=7, behind=0)

    async def database_check(self) -> readiness.Result:
        return self.database

    async def projector_check(self) -> readiness.Result:
        return self.projector

    def registration(self) -> Registration:
        q = query_pb2
        return _registration(
            self.SERVICE,
            self,
            {
                "ListUsers": (False, q.ListUsersRequest, q.ListUsersResponse),
                "GetUser": (False, q.GetUserRequest, q.GetUserResponse),
                "Login": (False, q.LoginRequest, q.LoginResponse),
                "GetLoginHistory": (False, q.GetLoginHistoryRequest, q.GetLoginHistoryResponse),
                "RebuildReadModel": (
                    True,
                    q.RebuildReadModelRequest,
                    q.RebuildReadModelResponse,
                ),
            },
        )

    async def ListUsers(
        self, request: query_pb2.ListUsersRequest, context: Context
    ) -> query_pb2.ListUsersResponse:
        self.record("ListUsers", context)
        self.requests["ListUsers"].append(request)
        users = [_user("u-1"), _user("u-2")]
        more = "" if request.page_token else "u-2"  # a second page, empty
        return query_pb2.ListUsersResponse(users=users, count=len(users), next_page_token=more)

    async def GetUser(
        self, request: query_pb2.GetUserRequest, context: Context
    ) -> query_pb2.GetUserResponse:
        metadata = self.record("GetUser", context)
        if "authorization" not in metadata:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        if request.id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "user missing not found")
        if request.id == "forbidden":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "id: not yours")
        if request.id == "broken":
            await context.abort(grpc.StatusCode.INTERNAL, "database on fire")
        return query_pb2.GetUserResponse(user=_user(request.id))

    async def Login(
        self, request: query_pb2.LoginRequest, context: Context
    ) -> query_pb2.LoginResponse:
        self.record("Login", context)
        context.set_trailing_metadata((("retry-after", "7"),))
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many failed logins")
        raise AssertionError("unreachable")

    async def GetLoginHistory(
        self, request: query_pb2.GetLoginHistoryRequest, context: Context
    ) -> query_pb2.GetLoginHistoryResponse:
        self.record("GetLoginHistory", context)
        if request.id == "slow":
            await asyncio.sleep(5)
        return query_pb2.GetLoginHistoryResponse(id=request.id, count=0)

    async def RebuildReadModel(
        self, request: query_pb2.RebuildReadModelRequest, context: Context
    ) -> AsyncIterator[query_pb2.RebuildReadModelResponse]:
        metadata = self.record("RebuildReadModel", context)
        mode = metadata.get("idempotency-key", "")
        if mode == "deny":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "admins only")
        total = 3
        for done in range(1, total + 1):
            await asyncio.sleep(0.01)
            yield query_pb2.RebuildReadModelResponse(
                done=done, total=total, rate=100.0, finished=done == total
            )
            if mode == "fail-midway":
                await context.abort(grpc.StatusCode.ABORTED, "rebuild interrupted")


class FakeCommand(Recorder):
    SERVICE = "cqrs.command.v1.CommandService"

    def registration(self) -> Registration:
        c = command_pb2
        return _registration(
            self.SERVICE,
            self,
            {
                "Register": (False, c.RegisterRequest, c.RegisterResponse),
                "ChangePassword": (False, c.ChangePasswordRequest, c.ChangePasswordResponse),
                "ChangeEmail": (False, c.ChangeEmailRequest, c.ChangeEmailResponse),
                "Deactivate": (False, c.DeactivateRequest, c.DeactivateResponse),
            },
        )

    async def Register(
        self, request: command_pb2.RegisterRequest, context: Context
    ) -> command_pb2.RegisterResponse:
        self.record("Register", context)
        return command_pb2.RegisterResponse(
            id="u-1",
            message=f"User {request.email} registered successfully",
            version=1,
            position=2**40 + 5,
        )

    async def ChangePassword(
        self, request: command_pb2.ChangePasswordRequest, context: Context
    ) -> command_pb2.ChangePasswordResponse:
        self.record("ChangePassword", context)
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, f"user {request.id} is deactivated"
        )
        raise AssertionError("unreachable")

    async def ChangeEmail(
        self, request: command_pb2.ChangeEmailRequest, context: Context
    ) -> command_pb2.ChangeEmailResponse:
        self.record("ChangeEmail", context)
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, "new_email: already taken")
        raise AssertionError("unreachable")

    async def Deactivate(
        self, request: command_pb2.DeactivateRequest, context: Context
    ) -> command_pb2.DeactivateResponse:
        self.record("Deactivate", context)
        return command_pb2.DeactivateResponse(id=request.id, message=request.reason, version=2)


class FakeStore(Recorder):
    """CountEvents for services only (checks the gateway's service token); Subscribe."""

    SERVICE = "cqrs.eventstore.v1.EventStoreService"

    def __init__(self, codec: TokenVerifier) -> None:
        super().__init__()
        self.codec = codec

    def registration(self) -> Registration:
        s = event_store_pb2
        return _registration(
            self.SERVICE,
            self,
            {
                "CountEvents": (False, s.CountEventsRequest, s.CountEventsResponse),
                "Subscribe": (True, s.SubscribeRequest, s.SubscribeResponse),
            },
        )

    async def CountEvents(
        self, request: event_store_pb2.CountEventsRequest, context: Context
    ) -> event_store_pb2.CountEventsResponse:
        self.record("CountEvents", context)
        try:
            principal = self.codec.decode(bearer_token(context.invocation_metadata()))
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
        if principal.role != ROLE_SERVICE:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "services only")
        return event_store_pb2.CountEventsResponse(count=42)

    async def Subscribe(
        self, request: event_store_pb2.SubscribeRequest, context: Context
    ) -> AsyncIterator[event_store_pb2.SubscribeResponse]:
        """Endless checkpoints; counts itself open until the call ends."""
        self.record("Subscribe", context)
        self.open_streams += 1
        try:
            position = request.from_position
            while True:
                position += 1
                reply = event_store_pb2.SubscribeResponse()
                reply.checkpoint.position = position
                reply.checkpoint.sent_at.FromJsonString("2025-10-25T19:57:00Z")
                yield reply
                await asyncio.sleep(0.05)
        finally:
            self.open_streams -= 1
