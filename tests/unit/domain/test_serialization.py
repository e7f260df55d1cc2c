"""Event payloads, redaction and snapshot dicts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    EVENT_TYPES,
    STATE_SCHEMA_VERSION,
    ChangeEmail,
    ChangePassword,
    Deactivate,
    DomainEvent,
    EmailChanged,
    EmailVerified,
    LoginRecorded,
    PasswordChanged,
    PasswordReset,
    PasswordResetRequested,
    RecordLogin,
    SessionRevoked,
    SessionsRevoked,
    UnknownEventType,
    UserCreated,
    UserDeactivated,
    UserErased,
    UserReactivated,
    UserState,
    ValidationError,
    event_from_payload,
    event_to_payload,
    state_from_dict,
    state_to_dict,
)
from pii.codec import REDACTED, redact_event

from .factories import (
    EMAIL,
    HASH,
    T0,
    USER_ID,
    any_events,
    apply,
    at,
    envelope,
    registered,
)

pytestmark = pytest.mark.unit


def rebuild(event: DomainEvent, payload: dict[str, Any]) -> DomainEvent:
    return event_from_payload(
        event.EVENT_TYPE,
        payload,
        aggregate_id=event.aggregate_id,
        version=event.version,
        occurred_at=event.occurred_at,
    )


def test_payloads_hold_only_event_fields() -> None:
    common = envelope()
    cases: list[tuple[DomainEvent, dict[str, str | int]]] = [
        (
            UserCreated(**envelope(1), email=EMAIL, password_hash=HASH, role="user"),
            {"email": EMAIL, "password_hash": HASH, "role": "user"},
        ),
        (
            PasswordChanged(**common, password_hash="h", kept_session_id="s-1"),
            {"password_hash": "h", "kept_session_id": "s-1"},
        ),
        (
            EmailChanged(**common, old_email="a@b.io", new_email="c@d.io"),
            {"old_email": "a@b.io", "new_email": "c@d.io"},
        ),
        (UserDeactivated(**common, reason=""), {"reason": ""}),
        (LoginRecorded(**common, client_address="::1"), {"client_address": "::1"}),
        (
            PasswordReset(**common, password_hash="h", method="admin", actor="a"),
            {"password_hash": "h", "method": "admin", "actor": "a"},
        ),
        (
            PasswordResetRequested(
                **common, token_nonce="n", token_hash="t", expires_at=at(60), email=EMAIL
            ),
            {
                "token_nonce": "n",
                "token_hash": "t",
                "expires_at": "2025-01-15T10:01:00Z",
                "email": EMAIL,
            },
        ),
        (UserReactivated(**common, reason="back"), {"reason": "back"}),
        (
            SessionRevoked(**common, session_id="s1", reason="logout"),
            {"session_id": "s1", "reason": "logout"},
        ),
        (SessionsRevoked(**common, reason="all"), {"reason": "all"}),
        (EmailVerified(**common, email=EMAIL), {"email": EMAIL}),
        (UserErased(**common, email=EMAIL, actor="a1"), {"email": EMAIL, "actor": "a1"}),
    ]
    for event, expected in cases:
        assert event_to_payload(event) == expected
        assert rebuild(event, dict(expected)) == event
    assert {type(event).EVENT_TYPE for event, _ in cases} == set(EVENT_TYPES)


@settings(max_examples=200)
@given(any_events)
def test_every_event_round_trips_through_json(event: DomainEvent) -> None:
    payload = event_to_payload(event)
    assert not {"aggregate_id", "version", "occurred_at"} & payload.keys()
    assert rebuild(event, json.loads(json.dumps(payload))) == event


def test_unknown_event_type() -> None:
    with pytest.raises(UnknownEventType, match=r"unknown event type 'user.exploded'"):
        event_from_payload("user.exploded", {}, aggregate_id=USER_ID, version=1, occurred_at=T0)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password_hash": HASH, "role": "user"}, "email"),
        ({"email": EMAIL, "password_hash": 42, "role": "user"}, "password_hash"),
        ({"email": None, "password_hash": HASH, "role": "user"}, "email"),
    ],
)
def test_bad_payloads_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        event_from_payload("user.created", payload, aggregate_id=USER_ID, version=1, occurred_at=T0)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ({"aggregate_id": "", "version": 1, "occurred_at": T0}, "aggregate_id"),
        ({"aggregate_id": USER_ID, "version": 0, "occurred_at": T0}, "version"),
        ({"aggregate_id": USER_ID, "version": True, "occurred_at": T0}, "version"),
        (
            {"aggregate_id": USER_ID, "version": 1, "occurred_at": datetime(2025, 1, 1)},
            "occurred_at",
        ),
        (
            {"aggregate_id": USER_ID, "version": 1, "occurred_at": "2025-01-01T00:00:00Z"},
            "occurred_at",
        ),
    ],
)
def test_bad_envelopes_name_the_field(envelope: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        event_from_payload("user.login.recorded", {"client_address": ""}, **envelope)
    assert info.value.field == field


def test_unknown_payload_keys_are_ignored() -> None:
    event = event_from_payload(
        "user.deactivated",
        {"reason": "r", "added_later": 1},
        aggregate_id=USER_ID,
        version=3,
        occurred_at=T0,
    )
    assert event == UserDeactivated(aggregate_id=USER_ID, version=3, occurred_at=T0, reason="r")


# --- redaction ------------------------------------------------------------------------


@settings(max_examples=200)
@given(any_events, st.text(min_size=1, max_size=60))
def test_redaction_never_leaves_a_hash(event: DomainEvent, secret: str) -> None:
    """The contract's secret fields (pii.codec) cover every hash the domain stores."""
    marker = f"\x01secret:{secret}"  # cannot collide with any other payload text
    if isinstance(event, UserCreated | PasswordChanged):
        event = replace(event, password_hash=marker)
    redacted = redact_event(event.EVENT_TYPE, event_to_payload(event))
    assert marker not in json.dumps(redacted)
    if "password_hash" in event_to_payload(event):
        assert redacted["password_hash"] == REDACTED


# --- snapshots -----------------------------------------------------------------------------


def rich_state() -> UserState:
    state = registered()
    state = apply(
        state,
        ChangePassword(
            old_password="correct horse",
            new_password="battery staple",
            old_password_matches=True,
            new_password_hash="h2",
        ),
        at(1.25),
    )
    state = apply(state, ChangeEmail("bob@example.org"), at(2))
    state = apply(state, RecordLogin("::1"), at(3))
    return apply(state, Deactivate("done"), at(4))


@pytest.mark.parametrize("state", [registered(), rich_state()], ids=["new", "rich"])
def test_state_round_trips_through_json(state: UserState) -> None:
    data = state_to_dict(state)
    assert data["schema_version"] == STATE_SCHEMA_VERSION
    assert data["password_hash"] == state.password_hash  # internal format keeps it
    assert state_from_dict(json.loads(json.dumps(data))) == state


def test_state_dict_renders_timestamps_rfc3339() -> None:
    data = state_to_dict(rich_state())
    assert data["created_at"] == "2025-01-15T10:00:00Z"
    assert data["password_changed_at"] == "2025-01-15T10:00:01.250000Z"
    assert data["status"] == "deactivated"
    assert state_to_dict(registered())["last_login_at"] is None


@pytest.mark.parametrize("schema", [None, 0, 1, 3, "2", True])
def test_state_from_dict_refuses_other_schema_versions(schema: object) -> None:
    data = {**state_to_dict(registered()), "schema_version": schema}
    with pytest.raises(ValidationError) as info:
        state_from_dict(data)
    assert info.value.field == "schema_version"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": None}, "email"),
        ({"version": "1"}, "version"),
        ({"login_count": False}, "login_count"),
        ({"status": "banned"}, "status"),
        ({"created_at": None}, "created_at"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"last_login_at": "2025-01-01T00:00:00"}, "last_login_at"),
    ],
)
def test_state_from_dict_names_bad_fields(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        state_from_dict({**state_to_dict(registered()), **change})
    assert info.value.field == field


def test_state_from_dict_names_missing_fields() -> None:
    data = state_to_dict(registered())
    del data["password_hash"]
    with pytest.raises(ValidationError, match=r"^password_hash: is required"):
        state_from_dict(data)


def test_a_field_added_later_reads_as_its_default_from_an_older_payload() -> None:
    # user.password.changed was stored without kept_session_id before it existed.
    event = event_from_payload("user.password.changed", {"password_hash": "h"}, **envelope())
    assert isinstance(event, PasswordChanged)
    assert (event.password_hash, event.kept_session_id) == ("h", "")
    # A field without a default is still required.
    with pytest.raises(ValidationError, match="password_hash"):
        event_from_payload("user.password.changed", {"kept_session_id": "s"}, **envelope())
