"""diff_states / changed_fields: every public field, never the hash."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    PUBLIC_FIELDS,
    ChangeEmail,
    ChangePassword,
    Command,
    Deactivate,
    FieldChange,
    RecordLogin,
    UserState,
    changed_fields,
    diff_states,
    format_timestamp,
)

from .factories import EMAIL, HASH, apply, at, registered

pytestmark = pytest.mark.unit


def new_password(n: int) -> ChangePassword:
    return ChangePassword(
        old_password=f"password-{n - 1}",
        new_password=f"password-{n}",
        old_password_matches=True,
        new_password_hash=f"$2b$12$hash-{n}",
    )


def test_identical_states_have_no_diff() -> None:
    assert diff_states(registered(), registered()) == ()
    assert diff_states(None, None) == ()


def test_email_change_diff() -> None:
    before = registered()
    after = apply(before, ChangeEmail("bob@example.org"), at(1))
    assert diff_states(before, after) == (
        FieldChange("email", EMAIL, "bob@example.org"),
        FieldChange("version", "1", "2"),
        FieldChange("updated_at", "2025-01-15T10:00:00Z", "2025-01-15T10:00:01Z"),
        FieldChange("email_changed_at", "", "2025-01-15T10:00:01Z"),
    )
    assert changed_fields(before, after) == (
        "email",
        "version",
        "updated_at",
        "email_changed_at",
    )


def test_password_change_shows_a_pseudo_field_never_the_hash() -> None:
    before = registered()
    after = apply(before, new_password(1), at(1))
    changes = diff_states(before, after)
    assert FieldChange("password", "unchanged", "changed") in changes
    assert "password_hash" not in changed_fields(before, after)
    rendered = json.dumps([asdict(c) for c in changes])
    assert HASH not in rendered
    assert "hash-1" not in rendered
    # Reversed comparison (later state first) still reports the change.
    assert "password" in changed_fields(after, before)


def test_deactivation_and_login_are_diffed() -> None:
    before = registered()
    after = apply(apply(before, RecordLogin("::1"), at(1)), Deactivate("spam"), at(2))
    assert changed_fields(before, after) == (
        "status",
        "version",
        "updated_at",
        "deactivated_at",
        "deactivation_reason",
        "last_login_at",
        "login_count",
        "credential_version",
    )
    changes = {c.field: c for c in diff_states(before, after)}
    assert changes["status"] == FieldChange("status", "active", "deactivated")
    assert changes["login_count"] == FieldChange("login_count", "0", "1")


def test_missing_states_render_as_empty() -> None:
    state = registered()
    created = {c.field: c for c in diff_states(None, state)}
    assert created["email"] == FieldChange("email", "", EMAIL)
    assert created["password"] == FieldChange("password", "", "changed")
    assert "deactivated_at" not in created  # "" on both sides
    gone = {c.field: c for c in diff_states(state, None)}
    assert gone["email"] == FieldChange("email", EMAIL, "")
    assert gone["password"] == FieldChange("password", "unchanged", "")


commands_for_diff = st.lists(
    st.sampled_from(["email", "password", "login", "deactivate"]), max_size=8
)


@settings(max_examples=100)
@given(commands_for_diff, st.data())
def test_diff_never_leaks_and_covers_every_changed_public_field(
    steps: list[str], data: st.DataObject
) -> None:
    states: list[UserState] = [registered()]
    for n, step in enumerate(steps, start=1):
        if not states[-1].is_active:
            break
        options: dict[str, Command] = {
            "email": ChangeEmail(f"user{n}@example.com"),
            "password": new_password(n),
            "login": RecordLogin(f"10.0.0.{n}"),
            "deactivate": Deactivate(f"reason {n}"),
        }
        command = options[step]
        states.append(apply(states[-1], command, at(n)))
    a = data.draw(st.sampled_from([None, *states]))
    b = data.draw(st.sampled_from([None, *states]))
    changes = diff_states(a, b)
    names = [c.field for c in changes]
    assert "password_hash" not in names
    assert set(names) <= {*PUBLIC_FIELDS, "password"}
    for change in changes:
        assert change.before != change.after
        assert "$2b$" not in change.before + change.after
    if a is not None and b is not None:
        for name in PUBLIC_FIELDS:
            assert (name in names) == (getattr(a, name) != getattr(b, name))
        assert ("password" in names) == (a.password_version != b.password_version)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "2025-01-02T03:04:05Z"),
        (datetime(2025, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2025-01-02T03:04:05.120000Z"),
        (
            datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2025-01-02T03:04:05Z",
        ),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00Z"),
    ],
)
def test_format_timestamp(value: datetime, text: str) -> None:
    assert format_timestamp(value) == text
