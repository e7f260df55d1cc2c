"""The request rules of the contract: field_behavior and buf.validate agree, and
protovalidate reports every invalid field with its path (service_kit.request_validation)."""

from __future__ import annotations

from typing import Any

import pytest
from buf.validate import validate_pb2
from cqrs.command.v1 import command_pb2
from cqrs.eventstore.v1 import event_store_pb2
from cqrs.query.v1 import query_pb2
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from service_kit import descriptors
from service_kit.error_details import FieldViolation
from service_kit.errors import ServiceError
from service_kit.request_validation import check, violations

pytestmark = pytest.mark.unit

UUID = "6f1c0000-0000-4000-8000-000000000000"


def _request_fields() -> list[tuple[str, descriptor_pb2.FieldDescriptorProto]]:
    found = []
    for file in descriptors.descriptor_set().file:
        if not file.package.startswith("cqrs."):
            continue
        for message in file.message_type:
            for field in message.field:
                found.append((f"{file.package}.{message.name}.{field.name}", field))
    return found


@pytest.mark.parametrize(("name", "field"), _request_fields(), ids=lambda v: str(v)[:60])
def test_required_is_said_the_same_way_twice(
    name: str, field: descriptor_pb2.FieldDescriptorProto
) -> None:
    """google.api.field_behavior REQUIRED (documentation, OpenAPI) iff buf.validate's
    required (enforcement): one cannot drift from the other."""
    options = descriptor_pb2.FieldOptions.FromString(field.options.SerializeToString())
    documented = (
        field_behavior_pb2.REQUIRED in options.Extensions[field_behavior_pb2.field_behavior]
    )
    enforced = options.Extensions[validate_pb2.field].required
    assert documented == enforced, name


def test_every_invalid_field_is_reported_at_once() -> None:
    found = violations(command_pb2.RegisterRequest(email="not-an-email", password="short"))
    assert found == [
        FieldViolation("email", "must be a valid email address", "string.email_address"),
        FieldViolation("password", "must be at least 8 characters", "string.min_len"),
    ]
    with pytest.raises(ServiceError) as refused:
        check(command_pb2.ChangeEmailRequest(id="NOT-A-UUID", new_email=""))
    assert refused.value.code.name == "INVALID_ARGUMENT"
    assert refused.value.message == (
        "id: must be a canonical UUID (lower-case hex, 8-4-4-4-12); new_email: value is required"
    )
    assert [v.field for v in refused.value.details.violations] == ["id", "new_email"]


def test_paths_name_nested_fields_in_proto_names() -> None:
    request = event_store_pb2.AppendRequest(aggregate_id=UUID, exact=0)
    event = request.events.add(event_id="x", event_type="user.created")
    event.claims.add(namespace="", value="v")
    fields = {v.field for v in violations(request)}
    assert fields == {"events[0].event_id", "events[0].claims[0].namespace"}


def test_a_missing_alternative_names_them() -> None:
    found = violations(event_store_pb2.GetStateAtRequest(aggregate_id=UUID))
    assert found == [FieldViolation("point", "give exactly one of timestamp, version", "required")]


def test_bounds_and_valid_requests() -> None:
    assert violations(query_pb2.ListUsersRequest(page_size=1000, min_position=0)) == []
    unknown_status: Any = 7
    too_big = violations(query_pb2.ListUsersRequest(page_size=1001, status=unknown_status))
    assert {v.field for v in too_big} == {"page_size", "status"}
    far = event_store_pb2.ListEventsRequest()
    far.since.seconds = 253_402_300_800  # 10000-01-01: beyond RFC 3339
    assert [v.field for v in violations(far)] == ["since"]
    assert violations(command_pb2.RegisterRequest(email="A@B.CO", password="x" * 128)) == []
