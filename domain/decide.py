"""Deciding: turn a command and the current state into new events, or refuse.

``decide(state, command, *, now)`` is a pure function:
- it returns fully versioned events (the first has ``state.version + 1``,
  or 1 for ``RegisterUser``), all stamped ``occurred_at=now`` and addressed
  to the state's user; ``evolve`` accepts them in order;
- it raises a :class:`~domain.errors.DomainError` subclass to refuse, and
  then produces nothing.

Refusals, checked in this order:
1. ``RegisterUser`` on an existing user -> ``AlreadyExists``; any other
   command on no state -> ``UserNotFound``;
2. any command on an erased user -> ``UserErasedError`` (``EraseUser``:
   ``AlreadyErased``); ``EraseUser`` of anyone else is decided here, whatever
   their status (a deactivated user may be erased; the last active admin
   may not: ``LastActiveAdmin``);
   ``Reactivate`` of an active user -> ``NotDeactivated``; any other command
   on a deactivated user -> ``UserDeactivatedError`` (logins and a second
   ``Deactivate`` included: only an admin's reactivation brings it back);
3. command-specific checks -> ``InvalidCredentials`` / ``ValidationError`` /
   ``InvalidToken`` / ``LastActiveAdmin``.

Email uniqueness is not decided here: it needs every user's data, so the
store checks the claims (:mod:`domain.claims`) atomically at append time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, assert_never

from domain.commands import (
    ChangeEmail,
    ChangePassword,
    Command,
    CompletePasswordReset,
    Deactivate,
    EraseUser,
    Reactivate,
    RecordLogin,
    RegisterUser,
    RequestPasswordReset,
    ResetPassword,
    RevokeAllSessions,
    RevokeSession,
    VerifyEmail,
)
from domain.errors import (
    AlreadyErased,
    AlreadyExists,
    InvalidCredentials,
    InvalidToken,
    LastActiveAdmin,
    NotDeactivated,
    UserDeactivatedError,
    UserErasedError,
    UserNotFound,
    ValidationError,
)
from domain.events import (
    DomainEvent,
    EmailChanged,
    EmailVerified,
    LoginRecorded,
    PasswordChanged,
    PasswordReset,
    PasswordResetRequested,
    SessionRevoked,
    SessionsRevoked,
    UserCreated,
    UserDeactivated,
    UserErased,
    UserReactivated,
)
from domain.state import UserState, UserStatus
from domain.timefmt import require_utc
from domain.validation import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_REASON_LENGTH,
    MAX_USER_ID_LENGTH,
    ROLE_ADMIN,
    normalize_email,
    validate_bounded_text,
    validate_password,
    validate_password_change,
    validate_role,
    validate_user_id,
)

__all__ = ["MAX_SESSION_ID_LENGTH", "RESET_BY_ADMIN", "RESET_BY_TOKEN", "decide"]

RESET_BY_ADMIN: Final = "admin"
RESET_BY_TOKEN: Final = "token"
MAX_SESSION_ID_LENGTH: Final = 64


def decide(state: UserState | None, command: Command, *, now: datetime) -> tuple[DomainEvent, ...]:
    """Return the events ``command`` produces from ``state`` at time ``now``.

    ``now`` must be an aware UTC datetime (the caller owns the clock).
    """
    require_utc(now, "now")
    if isinstance(command, RegisterUser):
        if state is not None:
            raise AlreadyExists(state.user_id)
        return (_register(command, now),)
    if state is None:
        raise UserNotFound()
    uid, version = state.user_id, state.version + 1
    if state.status is UserStatus.ERASED:
        if isinstance(command, EraseUser):
            raise AlreadyErased(uid)
        raise UserErasedError(uid)
    if isinstance(command, EraseUser):
        actor = validate_bounded_text(command.actor, "actor", MAX_USER_ID_LENGTH)
        if command.last_active_admin and state.role == ROLE_ADMIN and state.is_active:
            raise LastActiveAdmin(uid)
        return (
            UserErased(
                aggregate_id=uid, version=version, occurred_at=now, email=state.email, actor=actor
            ),
        )
    if isinstance(command, Reactivate):
        if state.status is not UserStatus.DEACTIVATED:
            raise NotDeactivated(uid)
        reason = validate_bounded_text(command.reason, "reason", MAX_REASON_LENGTH)
        return (UserReactivated(aggregate_id=uid, version=version, occurred_at=now, reason=reason),)
    if state.status is UserStatus.DEACTIVATED:
        raise UserDeactivatedError(state.user_id)

    match command:
        case ChangePassword():
            if not command.old_password_matches:
                raise InvalidCredentials("old_password")
            validate_password_change(command.old_password, command.new_password)
            _require_hash(command.new_password_hash, "new_password_hash")
            return (
                PasswordChanged(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    password_hash=command.new_password_hash,
                    kept_session_id=command.keep_session_id,
                ),
            )
        case ChangeEmail():
            new_email = normalize_email(command.new_email, field="new_email")
            if new_email == state.email:
                raise ValidationError("new_email", "is the same as the current email")
            return (
                EmailChanged(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    old_email=state.email,
                    new_email=new_email,
                ),
            )
        case Deactivate():
            reason = validate_bounded_text(command.reason, "reason", MAX_REASON_LENGTH)
            if command.last_active_admin and state.role == ROLE_ADMIN:
                raise LastActiveAdmin(uid)
            return (
                UserDeactivated(aggregate_id=uid, version=version, occurred_at=now, reason=reason),
            )
        case ResetPassword():
            validate_password(command.new_password, field="new_password")
            _require_hash(command.new_password_hash, "new_password_hash")
            actor = validate_bounded_text(command.actor, "actor", MAX_USER_ID_LENGTH)
            return (
                PasswordReset(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    password_hash=command.new_password_hash,
                    method=RESET_BY_ADMIN,
                    actor=actor,
                ),
            )
        case RequestPasswordReset():
            _require_hash(command.token_nonce, "token_nonce")
            _require_hash(command.token_hash, "token_hash")
            require_utc(command.expires_at, "expires_at")
            if command.expires_at <= now:
                raise ValidationError("expires_at", "must be in the future")
            return (
                PasswordResetRequested(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    token_nonce=command.token_nonce,
                    token_hash=command.token_hash,
                    expires_at=command.expires_at,
                    email=state.email,
                ),
            )
        case CompletePasswordReset():
            pending = state.reset_expires_at
            if not command.token_matches or pending is None or now > pending:
                raise InvalidToken("token")
            validate_password(command.new_password, field="new_password")
            _require_hash(command.new_password_hash, "new_password_hash")
            return (
                PasswordReset(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    password_hash=command.new_password_hash,
                    method=RESET_BY_TOKEN,
                    actor="",
                ),
            )
        case RevokeSession():
            session_id = validate_bounded_text(
                command.session_id, "session_id", MAX_SESSION_ID_LENGTH
            )
            if not session_id:
                raise ValidationError("session_id", "is required")
            reason = validate_bounded_text(command.reason, "reason", MAX_REASON_LENGTH)
            return (
                SessionRevoked(
                    aggregate_id=uid,
                    version=version,
                    occurred_at=now,
                    session_id=session_id,
                    reason=reason,
                ),
            )
        case RevokeAllSessions():
            reason = validate_bounded_text(command.reason, "reason", MAX_REASON_LENGTH)
            return (
                SessionsRevoked(aggregate_id=uid, version=version, occurred_at=now, reason=reason),
            )
        case VerifyEmail():
            email_set_at = state.email_changed_at or state.created_at
            if (
                not command.token_matches
                or state.email_verified
                or now > email_set_at + command.ttl
            ):
                raise InvalidToken("token")
            verified = EmailVerified(
                aggregate_id=uid, version=version, occurred_at=now, email=state.email
            )
            return (verified,)
        case RecordLogin():
            address = validate_bounded_text(
                command.client_address, "client_address", MAX_CLIENT_ADDRESS_LENGTH
            )
            return (
                LoginRecorded(
                    aggregate_id=uid, version=version, occurred_at=now, client_address=address
                ),
            )
        case EraseUser():  # decided above, whatever the status
            raise AssertionError("unreachable")
        case _:
            assert_never(command)


def _register(command: RegisterUser, now: datetime) -> UserCreated:
    user_id = validate_user_id(command.user_id)
    email = normalize_email(command.email)
    validate_password(command.password)
    _require_hash(command.password_hash, "password_hash")
    role = validate_role(command.role)
    return UserCreated(
        aggregate_id=user_id,
        version=1,
        occurred_at=now,
        email=email,
        password_hash=command.password_hash,
        role=role,
    )


def _require_hash(value: str, field: str) -> None:
    # The hash comes from the service, not the user; an empty one is a bug
    # upstream, and storing it would lock the user out for good.
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "is required")
