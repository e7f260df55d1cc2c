"""evolve / fold: per-event effects, stream rules, and the version property."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import (
    ChangeEmail,
    Deactivate,
    DomainEvent,
    EmailChanged,
    EventSequenceError,
    LoginRecorded,
    PasswordChanged,
    RecordLogin,
    UserCreated,
    UserDeactivated,
    UserState,
    UserStatus,
    VersionConflict,
    evolve,
    fold,
)

from .factories import EMAIL, HASH, T0, USER_ID, any_events, apply, at, register, registered

pytestmark = pytest.mark.unit


def test_user_created_builds_the_initial_state() -> None:
    assert fold(register()) == UserState(
        user_id=USER_ID,
        email=EMAIL,
        role="user",
        status=UserStatus.ACTIVE,
        version=1,
        created_at=T0,
        updated_at=T0,
        password_hash=HASH,
        password_version=1,
        password_changed_at=None,
        email_changed_at=None,
        deactivated_at=None,
        deactivation_reason="",
        last_login_at=None,
        login_count=0,
    )


def test_each_event_updates_its_fields_version_and_updated_at() -> None:
    s1 = registered()
    s2 = evolve(
        s1, PasswordChanged(aggregate_id=USER_ID, version=2, occurred_at=at(1), password_hash="h2")
    )
    assert (s2.password_hash, s2.password_version, s2.password_changed_at) == ("h2", 2, at(1))
    s3 = evolve(
        s2,
        EmailChanged(
            aggregate_id=USER_ID, version=3, occurred_at=at(2), old_email=EMAIL, new_email="b@b.io"
        ),
    )
    assert (s3.email, s3.email_changed_at) == ("b@b.io", at(2))
    s4 = evolve(
        s3, LoginRecorded(aggregate_id=USER_ID, version=4, occurred_at=at(3), client_address="")
    )
    s5 = evolve(
        s4, LoginRecorded(aggregate_id=USER_ID, version=5, occurred_at=at(4), client_address="x")
    )
    assert (s5.login_count, s5.last_login_at) == (2, at(4))
    s6 = evolve(
        s5, UserDeactivated(aggregate_id=USER_ID, version=6, occurred_at=at(5), reason="spam")
    )
    assert s6.status is UserStatus.DEACTIVATED
    assert not s6.is_active
    assert (s6.deactivated_at, s6.deactivation_reason) == (at(5), "spam")
    for version, state in enumerate([s1, s2, s3, s4, s5, s6], start=1):
        assert state.version == version
        assert state.created_at == T0
    assert [s.updated_at for s in (s2, s3, s4, s5, s6)] == [at(n) for n in range(1, 6)]
    # Unrelated fields carry over.
    assert s6.email == "b@b.io"
    assert s6.password_hash == "h2"
    assert s6.login_count == 2


def test_fold_of_nothing_is_the_starting_state() -> None:
    assert fold([]) is None
    state = registered()
    assert fold([], state) is state


def test_fold_continues_from_a_snapshot() -> None:
    full = list(register())
    state = registered()
    later = apply(state, RecordLogin(), at(1))
    full.append(
        LoginRecorded(aggregate_id=USER_ID, version=2, occurred_at=at(1), client_address="")
    )
    assert fold(full[1:], state) == later == fold(full)


def test_stream_must_start_with_user_created_at_version_1() -> None:
    with pytest.raises(VersionConflict, match=r"expected version 1, got 2") as info:
        evolve(None, replace(register()[0], version=2))
    assert (info.value.expected, info.value.actual) == (1, 2)
    with pytest.raises(EventSequenceError, match=r"must start with 'user.created'"):
        evolve(
            None, LoginRecorded(aggregate_id=USER_ID, version=1, occurred_at=T0, client_address="")
        )


def test_user_created_on_existing_state_is_refused() -> None:
    again = UserCreated(
        aggregate_id=USER_ID,
        version=2,
        occurred_at=at(1),
        email=EMAIL,
        password_hash=HASH,
        role="user",
    )
    with pytest.raises(EventSequenceError, match=r"already exists"):
        evolve(registered(), again)


def test_event_for_another_aggregate_is_refused() -> None:
    other = LoginRecorded(
        aggregate_id="someone-else", version=2, occurred_at=at(1), client_address=""
    )
    with pytest.raises(EventSequenceError, match=r"someone-else"):
        evolve(registered(), other)


def test_version_conflict_message_names_expected_and_actual() -> None:
    state = apply(registered(), ChangeEmail("b@example.com"), at(1))
    duplicate = LoginRecorded(aggregate_id=USER_ID, version=2, occurred_at=at(2), client_address="")
    with pytest.raises(VersionConflict) as info:
        evolve(state, duplicate)
    assert str(info.value) == f"version conflict for '{USER_ID}': expected version 3, got 2"


def test_evolve_does_not_mutate_its_input() -> None:
    state = registered()
    before = replace(state)
    apply(state, Deactivate("x"), at(1))
    assert state == before


# --- properties ------------------------------------------------------------------


@settings(max_examples=200)
@given(st.integers(0, 20), any_events, st.integers(1, 10_000))
def test_evolve_rejects_any_version_but_the_next(
    logins: int, template: DomainEvent, version: int
) -> None:
    state = registered()
    for n in range(logins):
        state = apply(state, RecordLogin(), at(n + 1))
    expected = state.version + 1
    event = replace(template, aggregate_id=USER_ID, version=version)
    if version == expected and not isinstance(event, UserCreated):
        assert evolve(state, event).version == expected
        return
    if version == expected:
        with pytest.raises(EventSequenceError):
            evolve(state, event)
        return
    with pytest.raises(VersionConflict) as info:
        evolve(state, event)
    assert (info.value.expected, info.value.actual) == (expected, version)
    assert f"expected version {expected}, got {version}" in str(info.value)


@settings(max_examples=100)
@given(any_events.filter(lambda e: e.version != 1))
def test_a_new_stream_rejects_any_version_but_1(event: DomainEvent) -> None:
    with pytest.raises(VersionConflict) as info:
        evolve(None, event)
    assert (info.value.expected, info.value.actual) == (1, event.version)


@settings(max_examples=100)
@given(st.integers(2, 15), st.data())
def test_replaying_a_history_with_a_gap_or_duplicate_fails(
    length: int, data: st.DataObject
) -> None:
    history: list[DomainEvent] = list(register())
    for version in range(2, length + 1):
        history.append(
            LoginRecorded(
                aggregate_id=USER_ID, version=version, occurred_at=at(version), client_address=""
            )
        )
    index = data.draw(st.integers(1, len(history) - 1))
    if data.draw(st.booleans()):
        broken = history[:index] + history[index + 1 :]  # gap
    else:
        broken = history[: index + 1] + history[index:]  # duplicate
    if broken == history[:-1]:
        # Dropping the last event is a shorter valid history, not a gap.
        assert fold(broken) is not None
        return
    with pytest.raises(VersionConflict):
        fold(broken)
