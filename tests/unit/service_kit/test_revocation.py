"""service_kit.revocation: the view every service checks tokens against."""

from __future__ import annotations

import asyncio

import pytest

from service_kit.auth import ROLE_USER, Principal
from service_kit.revocation import NOT_READY, Ended, RevocationView, revocation_horizon
from service_kit.revocation_feed import ended_by
from service_kit.timeconv import utcnow

pytestmark = pytest.mark.unit

U = "user-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def token(sid: str = "s1", cv: int = 5) -> Principal:
    return Principal(U, "", ROLE_USER, sid, cv)


def test_not_ready_until_the_feed_reaches_the_head_seen_at_start() -> None:
    view = RevocationView(horizon=100)
    assert view.revoked(token()) == NOT_READY
    view.start_from(10, ready_at=12)
    assert not view.ready
    view.advance(12)
    assert view.ready and view.revoked(token()) == ""


def test_all_sessions_revoke_older_credential_versions_only() -> None:
    clock = Clock()
    view = RevocationView(horizon=100, clock=clock)
    view.start_from(0, ready_at=0)
    view.apply(Ended(U, 6, "", clock.now, "the password was changed"), position=1)
    assert view.revoked(token(cv=5)) == "token revoked: the password was changed"
    assert view.revoked(token(cv=6)) == ""
    # An older event read late never lowers the bar.
    view.apply(Ended(U, 3, "", clock.now, "older"), position=2)
    assert view.revoked(token(cv=5)) != ""
    assert view.position == 2


def test_entries_are_forgotten_after_the_horizon() -> None:
    clock = Clock()
    view = RevocationView(horizon=100, clock=clock)
    view.start_from(0, ready_at=0)
    view.apply(Ended(U, 6, "", clock.now, "x"), position=1)
    view.apply(Ended(U, 0, "s1", clock.now, "logout"), position=2)
    assert len(view) == 2
    clock.now += 101
    view.advance(3)
    assert len(view) == 0
    # An event already older than the horizon is not even kept.
    view.apply(Ended("u2", 1, "", clock.now - 500, "x"), position=4)
    assert len(view) == 0


async def test_waiters_wake_on_revocation() -> None:
    view = RevocationView(horizon=100)
    view.start_from(0, ready_at=0)
    waiter = asyncio.ensure_future(view.wait_revoked(token(), None))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    view.apply(Ended(U, 0, "s1", utcnow().timestamp(), "logout"), position=1)
    assert await asyncio.wait_for(waiter, 1) == "token revoked: logout"


def test_ended_by_reads_stored_events() -> None:
    at = utcnow()
    ended = ended_by(
        "user.session.revoked",
        {"session_id": "s1", "reason": "logout"},
        aggregate_id=U,
        version=4,
        occurred_at=at,
    )
    assert ended == Ended(U, 4, "s1", at.timestamp(), "the session was ended (logout)")
    assert ended_by("user.login.recorded", {}, aggregate_id=U, version=2, occurred_at=at) is None
    assert revocation_horizon(900) > 900


def test_a_password_change_keeps_the_session_that_made_it() -> None:
    clock = Clock()
    view = RevocationView(horizon=100, clock=clock)
    view.start_from(0, ready_at=0)
    view.apply(Ended(U, 6, "", clock.now, "the password was changed", "s1"), position=1)
    assert view.revoked(token(sid="s1", cv=5)) == ""
    assert view.revoked(token(sid="s2", cv=5)) == "token revoked: the password was changed"
    # A second change from the same session keeps it again.
    view.apply(Ended(U, 7, "", clock.now, "the password was changed", "s1"), position=2)
    assert view.revoked(token(sid="s1", cv=5)) == ""
    # A reset ends it too.
    view.apply(Ended(U, 8, "", clock.now, "the password was reset"), position=3)
    assert view.revoked(token(sid="s1", cv=5)) == "token revoked: the password was reset"
    assert view.revoked(token(sid="s3", cv=8)) == ""


def test_ended_by_reads_the_kept_session_of_a_password_change() -> None:
    at = utcnow()
    ended = ended_by(
        "user.password.changed",
        {"password_hash": "h", "kept_session_id": "s1"},
        aggregate_id=U,
        version=4,
        occurred_at=at,
    )
    assert ended == Ended(U, 4, "", at.timestamp(), "the password was changed", "s1")
    older = ended_by(
        "user.password.changed", {"password_hash": "h"}, aggregate_id=U, version=4, occurred_at=at
    )
    assert older is not None and older.kept_session_id == ""
