"""Error hierarchy and messages; timestamp parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    AlreadyExists,
    DomainError,
    EventSequenceError,
    InvalidCredentials,
    UnknownEventType,
    UserDeactivatedError,
    UserNotFound,
    ValidationError,
    VersionConflict,
    format_timestamp,
    parse_timestamp,
)

from .factories import utc_datetimes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (ValidationError("email", "is required"), "email: is required"),
        (InvalidCredentials("old_password"), "old_password: does not match"),
        (UserNotFound(), "user not found"),
        (UserNotFound("u1"), "user 'u1' not found"),
        (AlreadyExists("u1"), "user 'u1' already exists"),
        (AlreadyExists("a@b.io", kind="email"), "email 'a@b.io' already exists"),
        (UserDeactivatedError("u1"), "user 'u1' is deactivated"),
        (VersionConflict(3, 5), "version conflict: expected version 3, got 5"),
        (
            VersionConflict(3, 5, aggregate_id="u1"),
            "version conflict for 'u1': expected version 3, got 5",
        ),
        (EventSequenceError("bad order"), "bad order"),
        (UnknownEventType("user.x"), "unknown event type 'user.x'"),
    ],
)
def test_every_error_is_a_domain_error_with_a_clear_message(error: DomainError, text: str) -> None:
    assert isinstance(error, DomainError)
    assert isinstance(error, Exception)
    assert str(error) == text


def test_validation_error_attributes() -> None:
    error = ValidationError("email", "must contain exactly one '@'")
    assert (error.field, error.reason) == ("email", "must contain exactly one '@'")
    assert str(error) == "email: must contain exactly one '@'"


@settings(max_examples=100)
@given(st.one_of(utc_datetimes, st.datetimes(timezones=st.just(UTC))))
def test_timestamps_round_trip(value: datetime) -> None:
    text = format_timestamp(value)
    assert text.endswith("Z")
    assert parse_timestamp(text) == value


def test_parse_timestamp_converts_offsets_to_utc() -> None:
    parsed = parse_timestamp("2025-01-15T12:00:00+02:00")
    assert parsed == datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    assert parsed.utcoffset() is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2025-01-15T10:00:00", "2025-13-01T00:00:00Z"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^when: ") as info:
        parse_timestamp(text, "when")
    assert info.value.field == "when"


def test_format_timestamp_refuses_naive() -> None:
    with pytest.raises(ValidationError, match=r"^timestamp: "):
        format_timestamp(datetime(2025, 1, 1))
