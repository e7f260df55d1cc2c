"""Erasure in the domain: the user.erased event, the state after it, and what it refuses."""

from __future__ import annotations

import pytest

from domain import (
    AlreadyErased,
    ChangeEmail,
    ClaimChanges,
    Deactivate,
    EraseUser,
    LastActiveAdmin,
    RecordLogin,
    UserErased,
    UserErasedError,
    UserStatus,
    claims_for,
    decide,
    sessions_ended,
)

from .factories import EMAIL, USER_ID, apply, at, registered

pytestmark = pytest.mark.unit

ADMIN_ID = "9d1f6a0e-2b3c-4d5e-8f90-a1b2c3d4e5f6"


def test_erasing_appends_user_erased_with_the_released_email() -> None:
    (event,) = decide(registered(), EraseUser(ADMIN_ID), now=at(1))
    assert isinstance(event, UserErased)
    assert (event.email, event.actor, event.version) == (EMAIL, ADMIN_ID, 2)
    assert claims_for(event) == ClaimChanges(release=(EMAIL,))
    ended = sessions_ended(event)
    assert ended is not None and ended.session_id == "" and ended.version == 2


def test_the_erased_state_is_final_and_ends_every_session() -> None:
    state = apply(registered(), EraseUser(USER_ID), at(1))
    assert state.status is UserStatus.ERASED
    assert state.credential_version == 2
    assert not state.is_active
    for command in (ChangeEmail("new@example.com"), RecordLogin("10.0.0.1"), Deactivate()):
        with pytest.raises(UserErasedError):
            decide(state, command, now=at(2))
    with pytest.raises(AlreadyErased):
        decide(state, EraseUser(ADMIN_ID), now=at(2))


def test_a_deactivated_user_may_be_erased() -> None:
    state = apply(registered(), Deactivate("gone"), at(1))
    (event,) = decide(state, EraseUser(ADMIN_ID), now=at(2))
    assert isinstance(event, UserErased)


def test_the_last_active_admin_cannot_be_erased() -> None:
    admin = registered(role="admin")
    with pytest.raises(LastActiveAdmin):
        decide(admin, EraseUser(ADMIN_ID, last_active_admin=True), now=at(1))
    (event,) = decide(admin, EraseUser(ADMIN_ID), now=at(1))
    assert isinstance(event, UserErased)
