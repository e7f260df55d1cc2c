"""The account lifecycle: reactivation, admin and self-service password reset,
email verification, session revocation, the last-admin rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import (
    SESSION_ENDING_TYPES,
    ChangeEmail,
    ChangePassword,
    CompletePasswordReset,
    Deactivate,
    EmailVerified,
    InvalidToken,
    LastActiveAdmin,
    NotDeactivated,
    PasswordReset,
    PasswordResetRequested,
    Reactivate,
    RecordLogin,
    RequestPasswordReset,
    ResetPassword,
    RevokeAllSessions,
    RevokeSession,
    SessionsEnded,
    UserDeactivatedError,
    UserStatus,
    ValidationError,
    VerifyEmail,
    decide,
    diff_states,
    event_to_payload,
    public_fields,
    sessions_ended,
    state_from_dict,
    state_to_dict,
)
from pii.codec import REDACTED, redact_event

from .factories import EMAIL, USER_ID, apply, at, registered

pytestmark = pytest.mark.unit

TWO_DAYS = timedelta(days=2)


def reset_request(expires_in: float = 1800) -> RequestPasswordReset:
    return RequestPasswordReset(token_nonce="nonce", token_hash="digest", expires_at=at(expires_in))


def complete(matches: bool = True) -> CompletePasswordReset:
    return CompletePasswordReset(
        token_matches=matches, new_password="brand new pass", new_password_hash="h-new"
    )


# -- reactivation -----------------------------------------------------------------


def test_a_deactivated_user_is_reactivated_and_takes_commands_again() -> None:
    gone = apply(registered(), Deactivate("spam"), at(1))
    back = apply(gone, Reactivate("appeal"), at(2))
    assert back.status is UserStatus.ACTIVE
    assert back.deactivated_at is None and back.deactivation_reason == ""
    assert back.reactivated_at == at(2)
    # The deactivation ended every session; the reactivation does not undo that.
    assert back.credential_version == gone.version
    assert apply(back, RecordLogin("::1"), at(3)).login_count == 1


def test_reactivating_an_active_user_is_refused() -> None:
    with pytest.raises(NotDeactivated):
        decide(registered(), Reactivate(), now=at(1))


def test_a_deactivated_user_takes_nothing_but_a_reactivation() -> None:
    gone = apply(registered(), Deactivate(), at(1))
    for command in (RevokeAllSessions(), reset_request(), RevokeSession("s")):
        with pytest.raises(UserDeactivatedError):
            decide(gone, command, now=at(2))


# -- the last admin ---------------------------------------------------------------


def test_the_last_active_admin_is_not_deactivated() -> None:
    admin = registered(role="admin")
    with pytest.raises(LastActiveAdmin):
        decide(admin, Deactivate(last_active_admin=True), now=at(1))
    assert decide(admin, Deactivate(last_active_admin=False), now=at(1))


def test_the_admin_verdict_does_not_concern_users() -> None:
    assert decide(registered(), Deactivate(last_active_admin=True), now=at(1))


# -- passwords --------------------------------------------------------------------


def test_an_admin_reset_sets_the_password_without_the_old_one() -> None:
    state = registered()
    (event,) = decide(
        state,
        ResetPassword(new_password="brand new pass", new_password_hash="h2", actor="boss"),
        now=at(1),
    )
    assert isinstance(event, PasswordReset)
    assert (event.method, event.actor) == ("admin", "boss")
    after = apply(
        state,
        ResetPassword(new_password="brand new pass", new_password_hash="h2", actor="boss"),
        at(1),
    )
    assert after.password_hash == "h2" and after.password_version == 2
    assert after.credential_version == after.version


def test_an_admin_reset_still_checks_the_policy() -> None:
    with pytest.raises(ValidationError, match="new_password"):
        decide(
            registered(),
            ResetPassword(new_password="short", new_password_hash="h", actor="boss"),
            now=at(1),
        )


def test_a_reset_token_works_once_and_ends_every_session() -> None:
    requested = apply(registered(), reset_request(), at(1))
    assert requested.reset_token_hash == "digest" and requested.reset_expires_at == at(1800)
    (event,) = decide(requested, complete(), now=at(60))
    assert isinstance(event, PasswordReset) and event.method == "token"
    done = apply(requested, complete(), at(60))
    assert done.password_hash == "h-new"
    assert done.reset_token_hash == "" and done.reset_expires_at is None
    assert done.credential_version == done.version
    with pytest.raises(InvalidToken):
        decide(done, complete(), now=at(61))


@pytest.mark.parametrize(
    ("matches", "when"), [(False, 60), (True, 1801)], ids=["wrong token", "expired"]
)
def test_a_wrong_or_expired_reset_token_is_refused(matches: bool, when: float) -> None:
    requested = apply(registered(), reset_request(), at(1))
    with pytest.raises(InvalidToken, match=r"^token: invalid, expired or already used$"):
        decide(requested, complete(matches), now=at(when))


def test_no_pending_reset_means_no_token_works() -> None:
    with pytest.raises(InvalidToken):
        decide(registered(), complete(), now=at(1))


def test_a_password_change_drops_a_pending_reset() -> None:
    requested = apply(registered(), reset_request(), at(1))
    changed = apply(
        requested,
        ChangePassword(
            old_password="correct horse",
            new_password="another pass",
            old_password_matches=True,
            new_password_hash="h2",
        ),
        at(2),
    )
    with pytest.raises(InvalidToken):
        decide(changed, complete(), now=at(3))


def test_a_reset_request_carries_the_address_and_expires_in_the_future() -> None:
    (event,) = decide(registered(), reset_request(), now=at(1))
    assert isinstance(event, PasswordResetRequested)
    assert event.email == EMAIL and event.expires_at == at(1800)
    with pytest.raises(ValidationError, match="expires_at"):
        decide(registered(), reset_request(expires_in=0), now=at(1))


# -- email verification -----------------------------------------------------------


def test_verifying_the_email_once() -> None:
    state = registered()
    assert not state.email_verified
    verified = apply(state, VerifyEmail(token_matches=True, ttl=TWO_DAYS), at(60))
    assert verified.email_verified and verified.email_verified_at == at(60)
    with pytest.raises(InvalidToken):
        decide(verified, VerifyEmail(token_matches=True, ttl=TWO_DAYS), now=at(61))


def test_a_verification_token_expires_with_its_address() -> None:
    with pytest.raises(InvalidToken):
        decide(registered(), VerifyEmail(token_matches=True, ttl=timedelta(seconds=10)), now=at(11))
    with pytest.raises(InvalidToken):
        decide(registered(), VerifyEmail(token_matches=False, ttl=TWO_DAYS), now=at(1))


def test_an_email_change_needs_a_new_verification() -> None:
    verified = apply(registered(), VerifyEmail(token_matches=True, ttl=TWO_DAYS), at(1))
    moved = apply(verified, ChangeEmail("new@example.com"), at(2))
    assert not moved.email_verified and moved.email_verified_at is None
    assert moved.email_set_version == moved.version
    (event,) = decide(moved, VerifyEmail(token_matches=True, ttl=TWO_DAYS), now=at(3))
    assert isinstance(event, EmailVerified) and event.email == "new@example.com"
    changed = {c.field for c in diff_states(verified, moved)}
    assert "email_verified" in changed


# -- sessions ---------------------------------------------------------------------


def test_which_sessions_each_event_ends() -> None:
    state = registered()
    (one,) = decide(state, RevokeSession("sid-1", "logout"), now=at(1))
    assert sessions_ended(one) == SessionsEnded(
        USER_ID, 2, "sid-1", "the session was ended (logout)"
    )
    (every,) = decide(state, RevokeAllSessions(), now=at(1))
    ended = sessions_ended(every)
    assert ended is not None and ended.session_id == "" and ended.version == 2
    (login,) = decide(state, RecordLogin(), now=at(1))
    assert sessions_ended(login) is None
    assert one.EVENT_TYPE in SESSION_ENDING_TYPES and every.EVENT_TYPE in SESSION_ENDING_TYPES
    assert apply(state, RevokeAllSessions(), at(1)).credential_version == 2
    assert apply(state, RevokeSession("sid-1"), at(1)).credential_version == 0


def test_a_session_id_is_required_and_bounded() -> None:
    with pytest.raises(ValidationError, match="session_id"):
        decide(registered(), RevokeSession(""), now=at(1))
    with pytest.raises(ValidationError, match="session_id"):
        decide(registered(), RevokeSession("x" * 65), now=at(1))


# -- what reads may show ----------------------------------------------------------


def test_token_secrets_are_redacted_and_not_public() -> None:
    (event,) = decide(registered(), reset_request(), now=at(1))
    payload = redact_event(event.EVENT_TYPE, event_to_payload(event))
    assert payload["token_hash"] == REDACTED and payload["token_nonce"] == REDACTED
    assert payload["email"] == EMAIL
    state = apply(registered(), reset_request(), at(1))
    assert "reset_token_hash" not in public_fields(state)
    assert "digest" not in repr(state) and "nonce" not in repr(event)


def test_new_state_fields_survive_a_snapshot() -> None:
    state = apply(
        apply(registered(), VerifyEmail(token_matches=True, ttl=TWO_DAYS), at(1)),
        reset_request(),
        at(2),
    )
    state = apply(apply(state, Deactivate(), at(3)), Reactivate(), at(4))
    assert state_from_dict(state_to_dict(state)) == state
