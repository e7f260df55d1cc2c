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

from collections.abc import Iterable
from dataclasses import replace
from typing import assert_never

from domain.errors import EventSequenceError, VersionConflict
from domain.events import (
    DomainEvent,
    EmailChanged,
    LoginRecorded,
    PasswordChanged,
    UserCreated,
    UserDeactivated,
)
from domain.state import UserState, UserStatus

__all__ = ["evolve", "fold"]


def evolve(state: UserState | None, event: DomainEvent) -> UserState:
    """Return the state after ``event``; raise if ``event`` cannot follow ``state``."""
    if state is None:
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

    if event.aggregate_id != state.user_id:
        raise EventSequenceError(
            f"event for {event.aggregate_id!r} cannot be applied to user {state.user_id!r}"
        )
    expected = state.version + 1
    if event.version != expected:
        raise VersionConflict(expected, event.version, aggregate_id=state.user_id)
    # Every event bumps version and updated_at; the match only adds its own fields.
    base = replace(state, version=event.version, updated_at=event.occurred_at)
    match event:
        case UserCreated():
            raise EventSequenceError(
                f"user {state.user_id!r} already exists; {event.EVENT_TYPE!r} at"
                f" version {event.version} cannot follow"
            )
        case PasswordChanged():
            return replace(
                base,
                password_hash=event.password_hash,
                password_version=state.password_version + 1,
                password_changed_at=event.occurred_at,
            )
        case EmailChanged():
            return replace(base, email=event.new_email, email_changed_at=event.occurred_at)
        case UserDeactivated():
            return replace(
                base,
                status=UserStatus.DEACTIVATED,
                deactivated_at=event.occurred_at,
                deactivation_reason=event.reason,
            )
        case LoginRecorded():
            return replace(base, last_login_at=event.occurred_at, login_count=state.login_count + 1)
        case _:
            assert_never(event)


def fold(events: Iterable[DomainEvent], state: UserState | None = None) -> UserState | None:
    """Apply ``events`` in order, starting from ``state`` (e.g. a snapshot).

    Returns ``state`` unchanged when ``events`` is empty (``None`` for a user
    with no history).
    """
    for event in events:
        state = evolve(state, event)
    return state
