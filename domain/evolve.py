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
from dataclasses import fields, replace
from typing import Any, assert_never

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


def _updates(
    user_id: str, version: int, password_version: int, login_count: int, event: DomainEvent
) -> dict[str, object]:
    """The fields ``event`` sets on a state with these values; raises if it cannot follow.

    Shared by ``evolve`` and ``fold`` so the two can never disagree; it works
    on plain values so ``fold`` need not build a frozen state per event.
    """
    if event.aggregate_id != user_id:
        raise EventSequenceError(
            f"event for {event.aggregate_id!r} cannot be applied to user {user_id!r}"
        )
    expected = version + 1
    if event.version != expected:
        raise VersionConflict(expected, event.version, aggregate_id=user_id)
    # Every event bumps version and updated_at; the match only adds its own fields.
    common: dict[str, object] = {"version": event.version, "updated_at": event.occurred_at}
    match event:
        case UserCreated():
            raise EventSequenceError(
                f"user {user_id!r} already exists; {event.EVENT_TYPE!r} at"
                f" version {event.version} cannot follow"
            )
        case PasswordChanged():
            return common | {
                "password_hash": event.password_hash,
                "password_version": password_version + 1,
                "password_changed_at": event.occurred_at,
            }
        case EmailChanged():
            return common | {"email": event.new_email, "email_changed_at": event.occurred_at}
        case UserDeactivated():
            return common | {
                "status": UserStatus.DEACTIVATED,
                "deactivated_at": event.occurred_at,
                "deactivation_reason": event.reason,
            }
        case LoginRecorded():
            return common | {"last_login_at": event.occurred_at, "login_count": login_count + 1}
        case _:
            assert_never(event)


_FIELDS = tuple(f.name for f in fields(UserState))


def evolve(state: UserState | None, event: DomainEvent) -> UserState:
    """Return the state after ``event``; raise if ``event`` cannot follow ``state``."""
    if state is None:
        return _created(event)
    changes = _updates(
        state.user_id, state.version, state.password_version, state.login_count, event
    )
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
        values.update(
            _updates(
                values["user_id"],
                values["version"],
                values["password_version"],
                values["login_count"],
                event,
            )
        )
        changed = True
    return UserState(**values) if changed else state
