"""Event classes: wire names, immutability, envelope checks, no hash in repr."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain import (
    EVENT_CLASSES,
    EVENT_TYPES,
    PasswordChanged,
    UserState,
    ValidationError,
)

from .factories import HASH, T0, USER_ID, register, registered

pytestmark = pytest.mark.unit


def test_event_types_are_the_stable_wire_names() -> None:
    assert EVENT_TYPES == (
        "user.created",
        "user.password.changed",
        "user.email.changed",
        "user.deactivated",
        "user.login.recorded",
        "user.password.reset",
        "user.password_reset.requested",
        "user.reactivated",
        "user.session.revoked",
        "user.sessions.revoked",
        "user.email.verified",
        "user.erased",
    )
    for name, cls in EVENT_CLASSES.items():
        assert name == cls.EVENT_TYPE


def test_event_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        EVENT_CLASSES["x"] = PasswordChanged  # type: ignore[index]


def test_events_and_state_are_frozen() -> None:
    (event,) = register()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.version = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        registered().email = "x"  # type: ignore[misc]


def test_repr_never_shows_the_hash() -> None:
    assert HASH not in repr(register()[0])
    assert HASH not in repr(registered())
    assert "secret-hash" not in repr(
        PasswordChanged(
            aggregate_id=USER_ID, version=2, occurred_at=T0, password_hash="secret-hash"
        )
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"aggregate_id": ""}, "aggregate_id"),
        ({"version": 0}, "version"),
        ({"version": -1}, "version"),
        ({"occurred_at": datetime(2025, 1, 1)}, "occurred_at"),
        (
            {"occurred_at": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-5)))},
            "occurred_at",
        ),
    ],
)
def test_envelope_is_checked_on_construction(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {
        "aggregate_id": USER_ID,
        "version": 2,
        "occurred_at": T0,
        "password_hash": "h",
        **kwargs,
    }
    with pytest.raises(ValidationError) as info:
        PasswordChanged(**values)  # type: ignore[arg-type]
    assert info.value.field == field


def test_utc_from_any_tzinfo_with_zero_offset_is_accepted() -> None:
    event = PasswordChanged(
        aggregate_id=USER_ID,
        version=2,
        occurred_at=datetime(2025, 1, 1, tzinfo=timezone(timedelta(0))),
        password_hash="h",
    )
    assert event.occurred_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_public_fields_exclude_the_hash() -> None:
    state = registered()
    public = state.public_fields()
    assert "password_hash" not in public
    assert "reset_token_hash" not in public
    assert HASH not in map(str, public.values())
    internal = {"password_hash", "email_set_version", "reset_token_hash", "reset_expires_at"}
    expected = {f.name for f in dataclasses.fields(UserState)} - internal
    assert set(public) == expected
    assert public["user_id"] == USER_ID
