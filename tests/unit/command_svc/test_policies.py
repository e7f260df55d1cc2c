"""The access table covers every CommandService method."""

from __future__ import annotations

import pytest
from cqrs.command.v1 import command_pb2

from command_svc.policies import POLICIES, SERVICE_NAME, method
from service_kit.auth import Access

pytestmark = pytest.mark.unit


def test_every_method_has_a_policy_and_nothing_else_does() -> None:
    service = command_pb2.DESCRIPTOR.services_by_name["CommandService"]
    assert set(POLICIES) == {f"/{SERVICE_NAME}/{m.name}" for m in service.methods}


def test_policies() -> None:
    assert POLICIES[method("Register")] == Access.PUBLIC
    for name in ("ChangePassword", "ChangeEmail", "Deactivate"):
        assert POLICIES[method(name)] == Access.owner("id")
    assert POLICIES[method("RecordLogin")] == Access.SERVICE
    assert method("Register") == "/cqrs.command.v1.CommandService/Register"
