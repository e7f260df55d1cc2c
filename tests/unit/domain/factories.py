"""Builders and hypothesis strategies shared by the domain unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict

from hypothesis import strategies as st

from domain import (
    ChangeEmail,
    ChangePassword,
    Command,
    Deactivate,
    DomainEvent,
    EmailChanged,
    EmailVerified,
    LoginRecorded,
    PasswordChanged,
    PasswordReset,
    PasswordResetRequested,
    Reactivate,
    RecordLogin,
    RegisterUser,
    ResetPassword,
    RevokeAllSessions,
    RevokeSession,
    SessionRevoked,
    SessionsRevoked,
    UserCreated,
    UserDeactivated,
    UserReactivated,
    UserState,
    VerifyEmail,
    decide,
    fold,
)

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
USER_ID = "0b7e5c3a-1f0e-4c1e-9a57-3f4a1d2c9e10"
EMAIL = "alice@example.com"
PASSWORD = "correct horse"
HASH = "$2b$12$abcdefghijklmnopqrstuv0123456789ABCDEFGHIJKLMNOPQRSTU"


class Envelope(TypedDict):
    """The envelope fields every event takes, for ``**``-splatting in tests."""

    aggregate_id: str
    version: int
    occurred_at: datetime


def envelope(
    version: int = 2, *, aggregate_id: str = USER_ID, occurred_at: datetime = T0
) -> Envelope:
    """An envelope for a hand-built event."""
    return Envelope(aggregate_id=aggregate_id, version=version, occurred_at=occurred_at)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def register(
    *, user_id: str = USER_ID, email: str = EMAIL, role: str = "user", now: datetime = T0
) -> tuple[DomainEvent, ...]:
    """Events of a successful registration."""
    command = RegisterUser(
        user_id=user_id, email=email, password=PASSWORD, password_hash=HASH, role=role
    )
    return decide(None, command, now=now)


def registered(*, email: str = EMAIL, role: str = "user") -> UserState:
    """State of a freshly registered user."""
    state = fold(register(email=email, role=role))
    assert state is not None
    return state


def apply(state: UserState, command: Command, now: datetime) -> UserState:
    """Decide and fold one command; fails the test on rejection."""
    result = fold(decide(state, command, now=now), state)
    assert result is not None
    return result


# --- strategies -----------------------------------------------------------

utc_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.just(UTC),
)

LOCAL_ATOM_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+/=?^_`{|}~-"
LETTERS = "abcdefghijklmnopqrstuvwxyz"

local_parts = (
    st.lists(st.text(LOCAL_ATOM_CHARS, min_size=1, max_size=12), min_size=1, max_size=3)
    .map(".".join)
    .filter(lambda s: len(s) <= 64)
)
labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
tlds = st.text(LETTERS, min_size=2, max_size=6)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]), st.lists(labels, min_size=1, max_size=3), tlds
)
valid_emails = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)

password_chars = st.characters(codec="utf-8", exclude_characters="\x00")
valid_passwords = st.text(password_chars, min_size=8, max_size=128)
hashes = st.text(st.characters(codec="ascii"), min_size=1, max_size=60)
free_text = st.text(max_size=40)
ids = st.from_regex(r"[a-z0-9-]{1,36}", fullmatch=True)

_common = {"aggregate_id": ids, "version": st.integers(1, 10_000), "occurred_at": utc_datetimes}

any_events: st.SearchStrategy[DomainEvent] = st.one_of(
    st.builds(UserCreated, **_common, email=free_text, password_hash=hashes, role=free_text),
    st.builds(PasswordChanged, **_common, password_hash=hashes),
    st.builds(EmailChanged, **_common, old_email=free_text, new_email=free_text),
    st.builds(UserDeactivated, **_common, reason=free_text),
    st.builds(LoginRecorded, **_common, client_address=free_text),
    st.builds(PasswordReset, **_common, password_hash=hashes, method=free_text, actor=free_text),
    st.builds(
        PasswordResetRequested,
        **_common,
        token_nonce=hashes,
        token_hash=hashes,
        expires_at=utc_datetimes,
        email=free_text,
    ),
    st.builds(UserReactivated, **_common, reason=free_text),
    st.builds(SessionRevoked, **_common, session_id=free_text, reason=free_text),
    st.builds(SessionsRevoked, **_common, reason=free_text),
    st.builds(EmailVerified, **_common, email=free_text),
)

# Small pools make collisions (same email, same password, re-registration)
# likely, so the rejection paths are exercised too.
_email_pool = st.sampled_from(
    [EMAIL, "ALICE@example.com", "bob@example.org", "carol@mail.example.net", "bad@", ""]
)
_password_pool = st.sampled_from([PASSWORD, "another pass", "third-password", "short"])

_command_kinds: dict[str, st.SearchStrategy[Command]] = {
    "password": st.builds(
        ChangePassword,
        old_password=_password_pool,
        new_password=_password_pool,
        old_password_matches=st.sampled_from([True, True, True, False]),
        new_password_hash=st.sampled_from(["h1", "h2", "h3", ""]),
    ),
    "email": st.builds(ChangeEmail, _email_pool),
    "deactivate": st.builds(Deactivate, st.sampled_from(["", "requested by user", "x" * 501])),
    "login": st.builds(RecordLogin, st.sampled_from(["", "10.0.0.1", "2001:db8::1"])),
    "reactivate": st.builds(Reactivate, st.sampled_from(["", "appeal granted"])),
    "reset": st.builds(
        ResetPassword,
        new_password=_password_pool,
        new_password_hash=st.sampled_from(["h4", ""]),
        actor=st.just("admin-id"),
    ),
    "revoke": st.builds(RevokeSession, st.sampled_from(["s1", "s2", ""])),
    "revoke_all": st.builds(RevokeAllSessions),
    "verify": st.builds(
        VerifyEmail,
        token_matches=st.sampled_from([True, False]),
        ttl=st.just(timedelta(days=2)),
    ),
    "register": st.builds(
        RegisterUser,
        user_id=st.just(USER_ID),
        email=_email_pool,
        password=_password_pool,
        password_hash=st.just(HASH),
    ),
}
# Deactivation stops every other command and re-registration always fails,
# so both are drawn rarely to let histories grow long.
commands: st.SearchStrategy[Command] = st.sampled_from(
    ["password"] * 5
    + ["email"] * 5
    + ["login"] * 5
    + ["reset", "revoke", "revoke_all", "verify", "reactivate"] * 2
    + ["register", "deactivate"]
).flatmap(lambda kind: _command_kinds[kind])
