"""domain.CredentialEpoch: which of a user's tokens survive the events that end sessions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import NO_EPOCH, CredentialEpoch, SessionsEnded

pytestmark = pytest.mark.unit

U = "u-1"


def every(version: int, kept: str = "") -> SessionsEnded:
    return SessionsEnded(U, version, "", "why", kept)


def test_no_epoch_allows_every_token() -> None:
    assert NO_EPOCH.allows("s", 0)


def test_an_event_ending_every_session_refuses_older_credential_versions() -> None:
    epoch = NO_EPOCH.after(every(4))
    assert not epoch.allows("s1", 3)
    assert epoch.allows("s1", 4) and epoch.allows("s2", 9)


def test_the_session_that_changed_the_password_stays() -> None:
    epoch = NO_EPOCH.after(every(4, kept="s1"))
    assert epoch.allows("s1", 0)
    assert not epoch.allows("s2", 3)
    assert not epoch.allows("", 3)  # a token without a session is never the kept one


def test_changes_in_a_row_from_one_session_keep_its_first_floor() -> None:
    epoch = NO_EPOCH.after(every(2)).after(every(4, kept="s1")).after(every(6, kept="s1"))
    assert epoch == CredentialEpoch(6, "s1", 2)
    assert epoch.allows("s1", 2) and not epoch.allows("s1", 1)


def test_another_session_keeping_moves_the_floor_to_the_epoch_it_replaces() -> None:
    epoch = NO_EPOCH.after(every(4, kept="s1")).after(every(6, kept="s2"))
    assert epoch == CredentialEpoch(6, "s2", 4)
    assert not epoch.allows("s1", 0)  # ended by s2's change
    assert epoch.allows("s2", 4)


def test_a_single_session_or_an_older_event_changes_nothing() -> None:
    epoch = NO_EPOCH.after(every(4))
    assert epoch.after(SessionsEnded(U, 5, "s9", "logout")) is epoch
    assert epoch.after(every(3, kept="s1")) is epoch


@given(
    st.lists(
        st.tuples(st.integers(1, 50), st.sampled_from(["", "a", "b"])), min_size=1, max_size=20
    ),
    st.sampled_from(["a", "b", "c"]),
    st.integers(0, 60),
)
def test_a_token_issued_at_the_current_epoch_is_always_allowed(
    events: list[tuple[int, str]], session: str, cv: int
) -> None:
    epoch = NO_EPOCH
    for version, kept in sorted(events):
        epoch = epoch.after(every(version, kept))
        assert epoch.kept_floor <= epoch.version
        assert epoch.kept_session_id or epoch.kept_floor == 0
    assert epoch.allows(session, max(cv, epoch.version))
    if session != epoch.kept_session_id:
        assert epoch.allows(session, cv) == (cv >= epoch.version)
