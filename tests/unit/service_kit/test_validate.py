"""uuid_field: canonical UUIDs pass (upper case folded); anything else names the field."""

from __future__ import annotations

import uuid

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service_kit.errors import ServiceError
from service_kit.validate import uuid_field


@given(st.uuids())
def test_a_canonical_uuid_passes_and_upper_case_is_folded(value: uuid.UUID) -> None:
    assert uuid_field("id", str(value)) == str(value)
    assert uuid_field("id", str(value).upper()) == str(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-uuid",
        "{12345678-1234-1234-1234-123456789abc}",
        "urn:uuid:12345678-1234-1234-1234-123456789abc",
        "12345678123412341234123456789abc",
        "12345678-1234-1234-1234-123456789abg",
        "12345678-1234-1234-1234-123456789abc\n",
    ],
)
def test_anything_else_is_invalid_and_names_the_field(value: str) -> None:
    with pytest.raises(ServiceError) as caught:
        uuid_field("events[0].event_id", value)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith("events[0].event_id")
