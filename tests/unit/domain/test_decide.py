"""decide: one test per command outcome, plus the accepted-history property."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import domain
from domain import (
    AlreadyExists,
    ChangeEmail,
    ChangePassword,
    Command,
    Deactivate,
    DomainError,
    DomainEvent,
    EmailChanged,
    InvalidCredentials,
    LoginRecorded,
    PasswordChanged,
    PasswordReset,
    RecordLogin,
    RegisterUser,
    SessionRevoked,
    UserCreated,
    UserDeactivated,
    UserDeactivatedError,
    UserNotFound,
    UserReactivated,
    UserState,
    UserStatus,
    ValidationError,
    decide,
    evolve,
    fold,
)

from .factories import (
    EMAIL,
    HASH,
    PASSWORD,
    T0,
    USER_ID,
    apply,
    at,
    commands,
    register,
    registered,
)

pytestmark = pytest.mark.unit


def change_password(
    *,
    old: str = PASSWORD,
    new: str = "a brand new secret",
    matches: bool = True,
    new_hash: str = "$2b$12$new",
) -> ChangePassword:
    return ChangePassword(
        old_password=old, new_password=new, old_password_matches=matches, new_password_hash=new_hash
    )


# --- RegisterUser -------------------------------------------------------------


def test_register_emits_user_created_at_version_1() -> None:
    (event,) = register(email="  Alice@Example.COM ", role="admin")
    assert event == UserCreated(
        aggregate_id=USER_ID,
        version=1,
        occurred_at=T0,
        email="alice@example.com",
        password_hash=HASH,
        role="admin",
    )


def test_register_defaults_to_role_user() -> None:
    (event,) = register()
    assert isinstance(event, UserCreated)
    assert event.role == "user"


def test_register_on_existing_user_is_already_exists() -> None:
    with pytest.raises(AlreadyExists, match=USER_ID):
        decide(
            registered(),
            RegisterUser(user_id=USER_ID, email=EMAIL, password=PASSWORD, password_hash=HASH),
            now=T0,
        )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password_hash": ""}, "password_hash"),
        ({"role": "superuser"}, "role"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "has space"}, "user_id"),
    ],
)
def test_register_validates_input(overrides: dict[str, str], field: str) -> None:
    values = {
        "user_id": USER_ID,
        "email": EMAIL,
        "password": PASSWORD,
        "password_hash": HASH,
        "role": "user",
        **overrides,
    }
    with pytest.raises(ValidationError) as info:
        decide(None, RegisterUser(**values), now=T0)
    assert info.value.field == field


@pytest.mark.parametrize(
    "now",
    [
        datetime(2025, 1, 1),  # naive
        datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_decide_requires_utc_now(now: datetime) -> None:
    with pytest.raises(ValidationError, match=r"^now: "):
        decide(
            None,
            RegisterUser(user_id=USER_ID, email=EMAIL, password=PASSWORD, password_hash=HASH),
            now=now,
        )


# --- commands on missing / deactivated users -------------------------------------

OTHER_COMMANDS: list[Command] = [
    change_password(),
    ChangeEmail("bob@example.com"),
    Deactivate("bye"),
    RecordLogin("10.0.0.1"),
]


@pytest.mark.parametrize("command", OTHER_COMMANDS, ids=lambda c: type(c).__name__)
def test_command_on_missing_user_is_not_found(command: Command) -> None:
    with pytest.raises(UserNotFound, match=r"^user not found$"):
        decide(None, command, now=T0)


@pytest.mark.parametrize("command", OTHER_COMMANDS, ids=lambda c: type(c).__name__)
def test_command_on_deactivated_user_is_refused(command: Command) -> None:
    state = apply(registered(), Deactivate(), at(1))
    with pytest.raises(UserDeactivatedError, match=f"user '{USER_ID}' is deactivated"):
        decide(state, command, now=at(2))


def test_deactivated_check_precedes_input_validation() -> None:
    state = apply(registered(), Deactivate(), at(1))
    with pytest.raises(UserDeactivatedError):
        decide(state, ChangeEmail("garbage"), now=at(2))


# --- ChangePassword ---------------------------------------------------------------


def test_change_password_emits_next_version() -> None:
    state = apply(registered(), RecordLogin(), at(1))
    (event,) = decide(state, change_password(), now=at(2))
    assert event == PasswordChanged(
        aggregate_id=USER_ID, version=3, occurred_at=at(2), password_hash="$2b$12$new"
    )


def test_change_password_with_wrong_old_password_names_old_password() -> None:
    with pytest.raises(InvalidCredentials) as info:
        decide(registered(), change_password(matches=False), now=at(1))
    assert info.value.field == "old_password"
    assert str(info.value) == "old_password: does not match"


def test_wrong_old_password_is_reported_before_new_password_problems() -> None:
    with pytest.raises(InvalidCredentials):
        decide(registered(), change_password(matches=False, new="short"), now=at(1))


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (change_password(new="short"), "new_password"),
        (change_password(new="bad\x00password"), "new_password"),
        (change_password(new=PASSWORD), "new_password"),
        (change_password(old=""), "old_password"),
        (change_password(new_hash=""), "new_password_hash"),
    ],
)
def test_change_password_validates(command: ChangePassword, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        decide(registered(), command, now=at(1))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


# --- ChangeEmail --------------------------------------------------------------------


def test_change_email_normalises_and_records_old_email() -> None:
    (event,) = decide(registered(), ChangeEmail("  Bob@Example.ORG "), now=at(1))
    assert event == EmailChanged(
        aggregate_id=USER_ID,
        version=2,
        occurred_at=at(1),
        old_email=EMAIL,
        new_email="bob@example.org",
    )


@pytest.mark.parametrize("same", [EMAIL, EMAIL.upper(), f"  {EMAIL}  "])
def test_change_email_to_the_same_address_is_refused(same: str) -> None:
    with pytest.raises(ValidationError, match=r"^new_email: is the same") as info:
        decide(registered(), ChangeEmail(same), now=at(1))
    assert info.value.field == "new_email"


def test_change_email_validates_naming_new_email() -> None:
    with pytest.raises(ValidationError, match=r"^new_email: must contain exactly one '@'$"):
        decide(registered(), ChangeEmail("bob.example.org"), now=at(1))


# --- Deactivate / RecordLogin ----------------------------------------------------------


def test_deactivate() -> None:
    (event,) = decide(registered(), Deactivate("requested"), now=at(1))
    assert event == UserDeactivated(
        aggregate_id=USER_ID, version=2, occurred_at=at(1), reason="requested"
    )
    assert decide(registered(), Deactivate(), now=at(1))[0] == UserDeactivated(
        aggregate_id=USER_ID, version=2, occurred_at=at(1), reason=""
    )


def test_deactivate_twice_is_refused() -> None:
    state = apply(registered(), Deactivate(), at(1))
    with pytest.raises(UserDeactivatedError):
        decide(state, Deactivate("again"), now=at(2))


def test_deactivate_reason_is_bounded() -> None:
    with pytest.raises(ValidationError, match=r"^reason: must be at most 500"):
        decide(registered(), Deactivate("x" * 501), now=at(1))


def test_record_login() -> None:
    (event,) = decide(registered(), RecordLogin("2001:db8::1"), now=at(1))
    assert event == LoginRecorded(
        aggregate_id=USER_ID, version=2, occurred_at=at(1), client_address="2001:db8::1"
    )
    (anonymous,) = decide(registered(), RecordLogin(), now=at(1))
    assert isinstance(anonymous, LoginRecorded)
    assert anonymous.client_address == ""


def test_record_login_address_is_bounded() -> None:
    with pytest.raises(ValidationError, match=r"^client_address: "):
        decide(registered(), RecordLogin("x" * 256), now=at(1))


def test_decide_is_pure() -> None:
    state = registered()
    command = ChangeEmail("bob@example.org")
    assert decide(state, command, now=at(1)) == decide(state, command, now=at(1))
    assert state == registered()


# --- property: any accepted history folds consistently ------------------------------


@settings(max_examples=200)
@given(st.lists(commands, max_size=8) | st.lists(commands, min_size=15, max_size=40))
def test_any_accepted_command_sequence_folds_to_the_evolved_state(
    sequence: list[Command],
) -> None:
    events: list[DomainEvent] = list(register())
    state: UserState | None = fold(events)
    expected_logins = expected_password_changes = 0
    for step, command in enumerate(sequence, start=1):
        try:
            new_events = decide(state, command, now=at(step))
        except DomainError:
            continue  # a rejection produces nothing and changes nothing
        assert state is not None
        assert [e.version for e in new_events] == list(
            range(state.version + 1, state.version + 1 + len(new_events))
        )
        for event in new_events:
            assert event.aggregate_id == USER_ID
            assert event.occurred_at == at(step)
            expected_logins += isinstance(event, LoginRecorded)
            expected_password_changes += isinstance(event, PasswordChanged | PasswordReset)
            state = evolve(state, event)
        events.extend(new_events)

    assert state is not None
    assert state.version == len(events)
    assert fold(events) == state
    assert state.login_count == expected_logins
    assert state.password_version == 1 + expected_password_changes
    lifecycle = [e for e in events if isinstance(e, UserDeactivated | UserReactivated)]
    # Deactivation and reactivation alternate, starting with a deactivation.
    assert all(
        isinstance(e, UserDeactivated if i % 2 == 0 else UserReactivated)
        for i, e in enumerate(lifecycle)
    )
    deactivated = bool(lifecycle) and isinstance(lifecycle[-1], UserDeactivated)
    assert (state.status is UserStatus.DEACTIVATED) == deactivated
    if deactivated:
        # Nothing but a reactivation is accepted after a deactivation.
        assert events[-1] == lifecycle[-1]
    # Every event that ends all sessions moves the credential version to itself.
    enders = [e for e in events if domain.sessions_ended(e) and not isinstance(e, SessionRevoked)]
    assert state.credential_version == (enders[-1].version if enders else 0)
    assert isinstance(events[0], UserCreated)
    assert sum(isinstance(e, UserCreated) for e in events) == 1
