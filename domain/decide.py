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
2. any command on a deactivated user -> ``UserDeactivatedError`` (logins and
   a second ``Deactivate`` included: deactivation is terminal);
3. command-specific checks -> ``InvalidCredentials`` / ``ValidationError``.

Email uniqueness is not decided here: it needs every user's data, so the
store checks the claims (:mod:`domain.claims`) atomically at append time.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from domain.commands import (
    ChangeEmail,
    ChangePassword,
    Command,
    Deactivate,
    RecordLogin,
    RegisterUser,
)
from domain.errors import (
    AlreadyExists,
    InvalidCredentials,
    UserDeactivatedError,
    UserNotFound,
    ValidationError,
)
from domain.events import (
    DomainEvent,
    EmailChanged,
    LoginRecorded,
    PasswordChanged,
    UserCreated,
    UserDeactivated,
)
from domain.state import UserState, UserStatus
from domain.timefmt import require_utc
from domain.validation import (
    MAX_CLIENT_ADDRESS_LENGTH,
    MAX_REASON_LENGTH,
    normalize_email,
    validate_bounded_text,
    validate_password,
    validate_password_change,
    validate_role,
    validate_user_id,
)

__all__ = ["decide"]


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
    if state.status is UserStatus.DEACTIVATED:
        raise UserDeactivatedError(state.user_id)

    uid, version = state.user_id, state.version + 1
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
            return (
                UserDeactivated(aggregate_id=uid, version=version, occurred_at=now, reason=reason),
            )
        case RecordLogin():
            address = validate_bounded_text(
                command.client_address, "client_address", MAX_CLIENT_ADDRESS_LENGTH
            )
            return (
                LoginRecorded(
                    aggregate_id=uid, version=version, occurred_at=now, client_address=address
                ),
            )
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
