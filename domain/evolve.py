"""Applying events to state: ``evolve`` one event, ``fold`` many.

Invariants enforced for every event applied:
- a stream starts with ``user.created`` at version 1 on no state;
- each later event has ``version == state.version + 1`` (gaps, duplicates
  and reorders raise :class:`~domain.errors.VersionConflict`);
- ``user.created`` never follows an existing state, and an event for another
  aggregate is refused (:class:`~domain.errors.EventSequenceError`).

``evolve`` does not re-check business rules (``decide`` did that before the
event existed); it trusts history beyond its ordering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from typing import Any, assert_never

from domain.errors import EventSequenceError, VersionConflict
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

__all__ = ["evolve", "fold"]


def _created(event: DomainEvent) -> UserState:
    """The state a stream's first event creates."""
    if event.version != 1:
        raise VersionConflict(1, event.version, aggregate_id=event.aggregate_id)
    if not isinstance(event, UserCreated):
        raise EventSequenceError(
            f"stream {event.aggregate_id!r} must start with {UserCreated.EVENT_TYPE!r},"
            f" not {event.EVENT_TYPE!r}"
        )
    return UserState(
        user_id=event.aggregate_id,
        email=event.email,
        role=event.role,
        status=UserStatus.ACTIVE,
        version=1,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        password_hash=event.password_hash,
    )


def _updates(current: Callable[[str], Any], event: DomainEvent) -> dict[str, object]:
    """The fields ``event`` sets on a state whose values ``current(name)`` gives;
    raises if it cannot follow.

    Shared by ``evolve`` and ``fold`` so the two can never disagree; it reads
    plain values so ``fold`` need not build a frozen state per event.
    """
    user_id = current("user_id")
    if event.aggregate_id != user_id:
        raise EventSequenceError(
            f"event for {event.aggregate_id!r} cannot be applied to user {user_id!r}"
        )
    expected = current("version") + 1
    if event.version != expected:
        raise VersionConflict(expected, event.version, aggregate_id=user_id)
    # Every event bumps version and updated_at; the match only adds its own fields.
    common: dict[str, object] = {"version": event.version, "updated_at": event.occurred_at}
    no_reset: dict[str, object] = {"reset_token_hash": "", "reset_expires_at": None}
    match event:
        case UserCreated():
            raise EventSequenceError(
                f"user {user_id!r} already exists; {event.EVENT_TYPE!r} at"
                f" version {event.version} cannot follow"
            )
        case PasswordChanged() | PasswordReset():
            return (
                common
                | no_reset
                | {
                    "password_hash": event.password_hash,
                    "password_version": current("password_version") + 1,
                    "password_changed_at": event.occurred_at,
                    "credential_version": event.version,
                }
            )
        case EmailChanged():
            return common | {
                "email": event.new_email,
                "email_changed_at": event.occurred_at,
                "email_set_version": event.version,
                "email_verified": False,
                "email_verified_at": None,
            }
        case UserDeactivated():
            return common | {
                "status": UserStatus.DEACTIVATED,
                "deactivated_at": event.occurred_at,
                "deactivation_reason": event.reason,
                "credential_version": event.version,
            }
        case UserReactivated():
            return common | {
                "status": UserStatus.ACTIVE,
                "deactivated_at": None,
                "deactivation_reason": "",
                "reactivated_at": event.occurred_at,
            }
        case LoginRecorded():
            return common | {
                "last_login_at": event.occurred_at,
                "login_count": current("login_count") + 1,
            }
        case PasswordResetRequested():
            return common | {
                "reset_token_hash": event.token_hash,
                "reset_expires_at": event.expires_at,
            }
        case SessionsRevoked():
            return common | {"credential_version": event.version}
        case SessionRevoked():
            return common
        case UserErased():
            # The email is the event's own (already "[ERASED]" once the key is
            # gone), so a fold never resurrects an address; every session ends.
            return (
                common
                | no_reset
                | {
                    "status": UserStatus.ERASED,
                    "email": event.email,
                    "credential_version": event.version,
                }
            )
        case EmailVerified():
            return common | {"email_verified": True, "email_verified_at": event.occurred_at}
        case _:
            assert_never(event)


_FIELDS = tuple(f.name for f in fields(UserState))


def evolve(state: UserState | None, event: DomainEvent) -> UserState:
    """Return the state after ``event``; raise if ``event`` cannot follow ``state``."""
    if state is None:
        return _created(event)
    changes = _updates(lambda name: getattr(state, name), event)
    return replace(state, **changes)  # type: ignore[arg-type]


def fold(events: Iterable[DomainEvent], state: UserState | None = None) -> UserState | None:
    """Apply ``events`` in order, starting from ``state`` (e.g. a snapshot).

    Returns ``state`` unchanged when ``events`` is empty (``None`` for a user
    with no history). Equivalent to repeated ``evolve``, but builds the frozen
    state once at the end instead of once per event (long streams fold in
    time travel's hot path).
    """
    it = iter(events)
    if state is None:
        first = next(it, None)
        if first is None:
            return None
        state = _created(first)
    values: dict[str, Any] = {name: getattr(state, name) for name in _FIELDS}
    changed = False
    for event in it:
        values.update(_updates(values.__getitem__, event))
        changed = True
    return UserState(**values) if changed else state
