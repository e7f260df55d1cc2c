"""The same flows through grpcurl, a real outside gRPC client using reflection.

grpcurl prints JSON with lowerCamelCase names and 64-bit integers as
strings (canonical proto3 JSON), unlike the gateway.
"""

from __future__ import annotations

import pytest

from tests.e2e.grpcurl_client import Grpcurl
from tests.e2e.support import between, unique_email
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

UNAUTHENTICATED = 16
PERMISSION_DENIED = 7
INVALID_ARGUMENT = 3

SERVICES = {
    "store_grpc": "cqrs.eventstore.v1.EventStoreService",
    "command_grpc": "cqrs.command.v1.CommandService",
    "query_grpc": "cqrs.query.v1.QueryService",
}


@pytest.mark.parametrize("port_name", sorted(SERVICES))
def test_list_describe_and_health(
    grpcurl: Grpcurl, e2e_system: SystemProcess, port_name: str
) -> None:
    port = getattr(e2e_system.ports, port_name)
    service = SERVICES[port_name]
    listed = grpcurl.run(port, "list").stdout.split()
    assert service in listed
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed
    described = grpcurl.run(port, "describe", service).stdout
    # The contract's comments come through reflection.
    assert f"{service} is a service:" in described
    assert described.count("//") >= 5
    health = grpcurl.call(port, "grpc.health.v1.Health/Check", {})
    assert health == {"status": "SERVING"}
    named = grpcurl.call(port, "grpc.health.v1.Health/Check", {"service": service})
    assert named == {"status": "SERVING"}


def test_comments_of_methods_and_messages_are_visible(
    grpcurl: Grpcurl, e2e_system: SystemProcess
) -> None:
    command = grpcurl.run(
        e2e_system.ports.command_grpc, "describe", "cqrs.command.v1.CommandService"
    ).stdout
    assert "// Registers a new user. Public." in command
    message = grpcurl.run(
        e2e_system.ports.query_grpc, "describe", "cqrs.query.v1.LoginRequest"
    ).stdout
    assert "Email address (case-insensitive)." in message
    state = grpcurl.run(
        e2e_system.ports.store_grpc, "describe", "cqrs.eventstore.v1.UserState"
    ).stdout
    assert "never carries a password hash" in state


def test_describe_a_single_method(grpcurl: Grpcurl, e2e_system: SystemProcess) -> None:
    described = grpcurl.run(
        e2e_system.ports.command_grpc, "describe", "cqrs.command.v1.CommandService.Register"
    ).stdout
    assert "Registers a new user. Public." in described


def test_register_login_change_email_and_time_travel(
    grpcurl: Grpcurl, e2e_system: SystemProcess
) -> None:
    ports = e2e_system.ports
    email, new_email, password = unique_email("grpc"), unique_email("grpc-new"), "Grpc-Pass-1"
    registered = grpcurl.call(
        ports.command_grpc,
        "cqrs.command.v1.CommandService/Register",
        {"email": email, "password": password},
    )
    user_id = registered["id"]
    assert registered["version"] == 1
    # Login reads the read model; the x-min-position header waits for the registration.
    login = grpcurl.run(
        ports.query_grpc,
        "cqrs.query.v1.QueryService/Login",
        data={"email": email, "password": password},
        headers={"x-min-position": str(registered["position"])},
    ).json()
    token = login["token"]
    assert login["tokenType"] == "Bearer"
    assert login["user"]["id"] == user_id

    # Without a token the command is refused.
    refused = grpcurl.run(
        ports.command_grpc,
        "cqrs.command.v1.CommandService/ChangeEmail",
        data={"id": user_id, "new_email": new_email},
        check=False,
    )
    assert refused.status_code == UNAUTHENTICATED, refused.stderr
    assert "Unauthenticated" in refused.stderr

    changed = grpcurl.call(
        ports.command_grpc,
        "cqrs.command.v1.CommandService/ChangeEmail",
        {"id": user_id, "new_email": new_email},
        token=token,
    )
    assert (changed["email"], changed["version"]) == (new_email, 3)

    events = grpcurl.call(
        ports.store_grpc,
        "cqrs.eventstore.v1.EventStoreService/GetAggregateEvents",
        {"aggregate_id": user_id},
        token=token,
    )["events"]
    assert [e["eventType"] for e in events] == [
        "user.created",
        "user.login.recorded",
        "user.email.changed",
    ]
    assert events[0]["payload"]["password_hash"] == "[REDACTED]"
    moment = between(events[1]["timestamp"], events[2]["timestamp"])
    before_change = grpcurl.call(
        ports.store_grpc,
        "cqrs.eventstore.v1.EventStoreService/GetStateAt",
        {"aggregate_id": user_id, "timestamp": moment},
        token=token,
    )
    assert before_change["state"]["email"] == email
    assert before_change["eventsReplayed"] == 2
    now = grpcurl.call(
        ports.store_grpc,
        "cqrs.eventstore.v1.EventStoreService/GetStateAt",
        {"aggregate_id": user_id, "timestamp": events[2]["timestamp"]},
        token=token,
    )
    assert now["state"]["email"] == new_email


def test_grpc_errors_name_the_field_and_deny_others(
    grpcurl: Grpcurl, e2e_system: SystemProcess, admin_token: str
) -> None:
    ports = e2e_system.ports
    bad = grpcurl.run(
        ports.command_grpc,
        "cqrs.command.v1.CommandService/Register",
        data={"email": "not-an-email", "password": "long-enough-1"},
        check=False,
    )
    assert bad.status_code == INVALID_ARGUMENT, bad.stderr
    assert "email:" in bad.stderr
    bad_time = grpcurl.run(
        ports.store_grpc,
        "cqrs.eventstore.v1.EventStoreService/GetStateAt",
        data={"aggregate_id": "not-a-uuid", "timestamp": "2030-01-01T00:00:00Z"},
        token=admin_token,
        check=False,
    )
    assert bad_time.status_code == INVALID_ARGUMENT, bad_time.stderr
    assert "aggregate_id:" in bad_time.stderr
    # Appending is for the project's services only, even for an admin.
    append = grpcurl.run(
        ports.store_grpc,
        "cqrs.eventstore.v1.EventStoreService/Append",
        data={"aggregate_id": "00000000-0000-4000-8000-000000000000", "events": []},
        token=admin_token,
        check=False,
    )
    assert append.status_code == PERMISSION_DENIED, append.stderr
