"""Every RPC's access rule, as the contract states it, is what the running system enforces.

Generated from the descriptors: one test per RPC of every service of the
contract (and the readiness service on each server), each calling the
method over real gRPC as anonymous, another user, the user the request is
about (the owner), an admin and a service, and checking the answer against
the rule in the method's ``(cqrs.access.v1.access)`` option. An RPC without
a probe below, or without a rule, fails its test: a new method cannot go
unchecked.

Each probe is a request that the callers the rule lets through get past the
access checks with, while changing nothing where it can: a field other than
the owner's id breaks a validation rule (INVALID_ARGUMENT proves the call
passed the access checks, which run first). The few probes with nothing to
break (reads, GetJwks, Logout, RebuildReadModel) run for real: a read, a
logout of a session made for the test, a rebuild cancelled after its first
progress message (its fresh tables are dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from cqrs.command.v1 import command_pb2  # noqa: F401  # registers the messages
from cqrs.eventstore.v1 import event_store_pb2  # noqa: F401
from cqrs.health.v1 import readiness_pb2  # noqa: F401
from cqrs.query.v1 import query_pb2  # noqa: F401
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from service_kit import descriptors
from service_kit.access import method_rules
from service_kit.auth import ROLE_SERVICE, Principal, TokenSettings
from service_kit.timeconv import utcnow
from tests.e2e.http_client import HttpClient
from tests.e2e.support import login, register
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

DENIED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
LONG = "x" * 600  # longer than any reason or address the contract accepts
CALLERS = ("anonymous", "other user", "owner", "admin", "service")

# Probe requests as proto JSON; "{owner}" is replaced with the owner's user id.
PROBES: dict[str, dict[str, Any]] = {
    "cqrs.command.v1.CommandService.Register": {"email": "not-an-email", "password": "x"},
    "cqrs.command.v1.CommandService.ChangePassword": {"id": "{owner}", "newPassword": "x"},
    "cqrs.command.v1.CommandService.ChangeEmail": {"id": "{owner}", "newEmail": "not-an-email"},
    "cqrs.command.v1.CommandService.Deactivate": {"id": "{owner}", "reason": LONG},
    "cqrs.command.v1.CommandService.RecordLogin": {"id": "{owner}", "clientAddress": LONG},
    "cqrs.command.v1.CommandService.Activate": {"id": "{owner}", "reason": LONG},
    "cqrs.command.v1.CommandService.IssuePasswordReset": {"id": "not-a-uuid"},
    "cqrs.command.v1.CommandService.ConfirmPasswordReset": {"token": "", "newPassword": "x"},
    "cqrs.command.v1.CommandService.ConfirmEmailVerification": {"token": ""},
    "cqrs.command.v1.CommandService.RevokeSessions": {"id": "not-a-uuid"},
    # A real erasure of this test's fresh owner (no field can make it invalid for the
    # owner alone); the callers after the owner find it erased: idempotent, still OK.
    "cqrs.command.v1.CommandService.EraseUser": {"id": "{owner}"},
    "cqrs.query.v1.QueryService.ListUsers": {"pageSize": 5000},
    "cqrs.query.v1.QueryService.GetUser": {"id": "{owner}", "minPosition": "-1"},
    "cqrs.query.v1.QueryService.Login": {"email": "", "password": ""},
    "cqrs.query.v1.QueryService.GetLoginHistory": {"id": "{owner}", "pageSize": 5000},
    "cqrs.query.v1.QueryService.RebuildReadModel": {},
    "cqrs.query.v1.QueryService.RefreshToken": {"refreshToken": ""},
    "cqrs.query.v1.QueryService.Logout": {},
    "cqrs.query.v1.QueryService.ListSessions": {"id": "{owner}"},
    "cqrs.query.v1.QueryService.GetJwks": {},
    "cqrs.query.v1.QueryService.RequestPasswordReset": {"email": ""},
    "cqrs.eventstore.v1.EventStoreService.Append": {"aggregateId": "not-a-uuid"},
    "cqrs.eventstore.v1.EventStoreService.AppendStream": {"append": {"aggregateId": "x"}},
    "cqrs.eventstore.v1.EventStoreService.LoadAggregate": {"aggregateId": "not-a-uuid"},
    "cqrs.eventstore.v1.EventStoreService.ReadStream": {"aggregateId": "{owner}", "limit": 5000},
    "cqrs.eventstore.v1.EventStoreService.GetAggregateEvents": {
        "aggregateId": "{owner}",
        "fromVersion": -1,
    },
    "cqrs.eventstore.v1.EventStoreService.ListEvents": {"limit": 5000},
    "cqrs.eventstore.v1.EventStoreService.CountEvents": {"aggregateId": "not-a-uuid"},
    "cqrs.eventstore.v1.EventStoreService.ReplayEvents": {},
    "cqrs.eventstore.v1.EventStoreService.Subscribe": {"heartbeatSeconds": 99},
    "cqrs.eventstore.v1.EventStoreService.GetState": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.GetStateAt": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.GetHistory": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.CompareStates": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.ListStatesAt": {},
    "cqrs.eventstore.v1.EventStoreService.CreateSnapshot": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.GetSnapshot": {"aggregateId": "{owner}"},
    "cqrs.eventstore.v1.EventStoreService.GetStateFromSnapshot": {"aggregateId": "{owner}"},
    "cqrs.health.v1.ReadinessService.GetReadiness": {},
}

# Which callers each access level lets through (independent of service_kit.auth).
ALLOWED: dict[str, frozenset[str]] = {
    "public": frozenset(CALLERS),
    "authenticated": frozenset(CALLERS) - {"anonymous"},
    "owner": frozenset({"owner", "admin", "service"}),
    "admin": frozenset({"admin", "service"}),
    "service": frozenset({"service"}),
}

# The server each service is reached on (the readiness service is on all three).
SERVERS = {
    "cqrs.command.v1.CommandService": ("command",),
    "cqrs.query.v1.QueryService": ("query",),
    "cqrs.eventstore.v1.EventStoreService": ("store",),
    "cqrs.health.v1.ReadinessService": ("store", "command", "query"),
}


@dataclass(frozen=True, slots=True)
class Case:
    service: str
    method: str
    server: str

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.method}"


def _cases() -> list[Case]:
    """One case per RPC of the contract (per server for readiness), from the descriptors."""
    return [
        Case(f"{file.package}.{service.name}", method.name, server)
        for file in descriptors.descriptor_set().file
        if file.package.startswith("cqrs.")
        for service in file.service
        for method in service.method
        for server in SERVERS.get(f"{file.package}.{service.name}", ("unknown",))
    ]


@dataclass(slots=True)
class Callers:
    """Fresh tokens of every kind of caller, and the owner's id."""

    owner_id: str
    tokens: dict[str, str]


@pytest.fixture
def callers(e2e_system: SystemProcess, http: HttpClient, admin_token: str) -> Iterator[Callers]:
    """Per test: a fresh owner and other user (Logout ends their sessions), the
    admin, and a service token signed with a service's own key."""
    owner = register(http, "access-owner")
    other = register(http, "access-other")
    admin = login(http, e2e_system.admin_email, e2e_system.admin_password)
    signer = TokenSettings(keys_dir=e2e_system.keys_dir).signer("gateway")
    service = signer.issue(Principal("gateway", "", ROLE_SERVICE), now=utcnow())[0]
    yield Callers(
        owner.id,
        {
            "anonymous": "",
            "other user": login(http, other.email, other.password, after=other.position),
            "owner": login(http, owner.email, owner.password, after=owner.position),
            "admin": admin,
            "service": service,
        },
    )


def _classes(case: Case) -> tuple[type[Message], type[Message], Any]:
    pool = descriptor_pool.Default()
    method = pool.FindMethodByName(case.full_name)
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    return request, response, method


def _request(case: Case, owner: str) -> Message:
    request_class, _, _ = _classes(case)
    template = PROBES.get(case.full_name)
    assert template is not None, f"no probe for {case.full_name}: add one to PROBES"

    def filled(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return owner if value == "{owner}" else value

    return json_format.ParseDict(filled(template), request_class())


async def _outcome(target: str, case: Case, request: Message, token: str) -> grpc.StatusCode:
    """The status the call ends with (OK when it answers, or streams a first message)."""
    _, response_class, method = _classes(case)
    path = f"/{case.service}/{case.method}"
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    serialize: Callable[[Message], bytes] = type(request).SerializeToString
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            if method.client_streaming:
                opened: Any = channel.stream_stream(path, serialize, response_class.FromString)
                call = opened(metadata=metadata, timeout=15)
                await call.write(request)
                reply = await call.read()
                call.cancel()
                if reply.HasField("failed"):  # an AppendStream reply carries the append's code
                    return next(c for c in grpc.StatusCode if c.value[0] == reply.failed.code)
                return grpc.StatusCode.OK
            if method.server_streaming:
                stream: Any = channel.unary_stream(path, serialize, response_class.FromString)(
                    request, metadata=metadata, timeout=30
                )
                await stream.read()  # the first message, or the status
                stream.cancel()
                return grpc.StatusCode.OK
            await channel.unary_unary(path, serialize, response_class.FromString)(
                request, metadata=metadata, timeout=15
            )
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c.full_name}@{c.server}")
def test_the_access_rule_of_the_contract_is_enforced(
    case: Case, callers: Callers, e2e_system: SystemProcess
) -> None:
    rules = {f"{r.service}.{r.method}": r.access for r in method_rules()}
    assert case.full_name in rules, f"{case.full_name} has no access rule"
    assert case.server != "unknown", f"{case.service}: add the server it runs on to SERVERS"
    rule = rules[case.full_name]
    ports = e2e_system.ports
    port = {"store": ports.store_grpc, "command": ports.command_grpc, "query": ports.query_grpc}
    target = f"127.0.0.1:{port[case.server]}"
    request = _request(case, callers.owner_id)
    seen = {
        caller: asyncio.run(_outcome(target, case, request, callers.tokens[caller]))
        for caller in CALLERS
    }
    for caller, code in seen.items():
        if caller in ALLOWED[rule.kind]:
            assert code not in DENIED, (case.full_name, rule, caller, seen)
        elif caller == "anonymous":
            assert code == grpc.StatusCode.UNAUTHENTICATED, (case.full_name, rule, seen)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (case.full_name, rule, caller, seen)


def test_include_secrets_is_the_services_alone(callers: Callers, e2e_system: SystemProcess) -> None:
    """Subscribe's include_secrets (field_access SERVICE): an admin may subscribe, but
    not to password hashes; a service may."""
    case = Case("cqrs.eventstore.v1.EventStoreService", "Subscribe", "store")
    request = _request(case, callers.owner_id)
    request.include_secrets = True  # type: ignore[attr-defined]
    target = f"127.0.0.1:{e2e_system.ports.store_grpc}"
    admin = asyncio.run(_outcome(target, case, request, callers.tokens["admin"]))
    service = asyncio.run(_outcome(target, case, request, callers.tokens["service"]))
    assert admin == grpc.StatusCode.PERMISSION_DENIED
    assert service == grpc.StatusCode.INVALID_ARGUMENT  # past the guard: heartbeat_seconds
