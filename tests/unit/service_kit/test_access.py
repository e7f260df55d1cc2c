"""The access rules in the contract: every RPC has one, and the table built from them."""

from __future__ import annotations

import pytest
from cqrs.access.v1 import access_pb2
from google.protobuf import descriptor_pb2

from service_kit import access, descriptors
from service_kit.access import AccessRuleError, method_rules, policies, rule_of
from service_kit.auth import ROLE_ADMIN, ROLE_SERVICE, ROLE_USER, Access, Principal

pytestmark = pytest.mark.unit


def _contract_methods() -> list[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    """Every method of every service of the project, read from the descriptor set itself."""
    return [
        (f"/{f.package}.{s.name}/{m.name}", m)
        for f in descriptors.descriptor_set().file
        if f.package.startswith("cqrs.")
        for s in f.service
        for m in s.method
    ]


@pytest.mark.parametrize(("path", "method"), _contract_methods(), ids=lambda v: str(v)[:80])
def test_every_rpc_of_the_contract_says_who_may_call_it(
    path: str, method: descriptor_pb2.MethodDescriptorProto
) -> None:
    """Generated from the descriptors: a new RPC without the option fails here (and at start)."""
    options = descriptor_pb2.MethodOptions.FromString(method.options.SerializeToString())
    assert options.HasExtension(access_pb2.access), f"{path} has no (cqrs.access.v1.access)"
    assert options.Extensions[access_pb2.access].level != access_pb2.ACCESS_LEVEL_UNSPECIFIED


def test_the_table_covers_every_method_once() -> None:
    rules = method_rules()
    assert sorted(r.path for r in rules) == sorted(path for path, _ in _contract_methods())


def test_the_rules_read_from_the_contract() -> None:
    table = policies(
        "cqrs.command.v1.CommandService",
        "cqrs.query.v1.QueryService",
        "cqrs.eventstore.v1.EventStoreService",
        "cqrs.health.v1.ReadinessService",
    )
    assert table["/cqrs.command.v1.CommandService/Register"] == Access.PUBLIC
    assert table["/cqrs.command.v1.CommandService/ChangeEmail"] == Access.owner("id")
    assert table["/cqrs.command.v1.CommandService/Activate"] == Access.ADMIN
    assert table["/cqrs.command.v1.CommandService/RecordLogin"] == Access.SERVICE
    assert table["/cqrs.query.v1.QueryService/Logout"] == Access.AUTHENTICATED
    assert table["/cqrs.eventstore.v1.EventStoreService/GetStateAt"] == Access.owner("aggregate_id")
    assert table["/cqrs.health.v1.ReadinessService/GetReadiness"] == Access.PUBLIC
    subscribe = table["/cqrs.eventstore.v1.EventStoreService/Subscribe"]
    assert subscribe.kind == "admin"
    assert subscribe.guarded == (("include_secrets", "service"),)


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(AccessRuleError, match="no such service"):
        policies("cqrs.nope.v1.Nope")


def _method(
    rule: access_pb2.AccessRule | None, *, client_streaming: bool = False
) -> descriptor_pb2.MethodDescriptorProto:
    method = descriptor_pb2.MethodDescriptorProto(
        name="Do", input_type=".t.Req", output_type=".t.Resp", client_streaming=client_streaming
    )
    if rule is not None:
        method.options.Extensions[access_pb2.access].CopyFrom(rule)
    return method


_REQUEST = descriptor_pb2.DescriptorProto(
    name="Req",
    field=[
        descriptor_pb2.FieldDescriptorProto(
            name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
        ),
        descriptor_pb2.FieldDescriptorProto(
            name="count", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32
        ),
    ],
)


@pytest.mark.parametrize(
    ("rule", "streaming", "problem"),
    [
        (None, False, "no \\(cqrs.access.v1.access\\) option"),
        (access_pb2.AccessRule(), False, "is not a level"),
        (access_pb2.AccessRule(level=access_pb2.ACCESS_LEVEL_OWNER), False, "owner_field ''"),
        (
            access_pb2.AccessRule(level=access_pb2.ACCESS_LEVEL_OWNER, owner_field="count"),
            False,
            "not a string field",
        ),
        (
            access_pb2.AccessRule(level=access_pb2.ACCESS_LEVEL_OWNER, owner_field="id"),
            True,
            "single request message",
        ),
        (
            access_pb2.AccessRule(level=access_pb2.ACCESS_LEVEL_ADMIN, owner_field="id"),
            False,
            "owner_field is set",
        ),
    ],
)
def test_a_method_without_a_usable_rule_is_refused(
    rule: access_pb2.AccessRule | None, streaming: bool, problem: str
) -> None:
    with pytest.raises(AccessRuleError, match=problem):
        rule_of("t.S.Do", _method(rule, client_streaming=streaming), _REQUEST)


def test_a_guarded_field_needs_its_level_and_the_owner_its_id() -> None:
    rule = Access.owner("id").guarding((("count", "service"),))
    user = Principal("u-1", "u@example.com", ROLE_USER)
    admin = Principal("a-1", "a@example.com", ROLE_ADMIN)
    service = Principal("query_svc", "", ROLE_SERVICE)

    class Request:
        def __init__(self, id: str, count: int) -> None:
            self.id, self.count = id, count

    assert rule.request_denial(user, Request("u-1", 0)) == ""
    assert rule.request_denial(user, Request("u-2", 0)).startswith("id: not yours")
    assert rule.request_denial(None, Request("u-1", 0)).startswith("id: not yours")
    assert rule.request_denial(admin, Request("u-2", 0)) == ""
    assert rule.request_denial(admin, Request("u-2", 3)) == (
        "count: reserved to the project's services"
    )
    assert rule.request_denial(service, Request("u-2", 3)) == ""
    assert access.PROJECT_PACKAGE == "cqrs."
