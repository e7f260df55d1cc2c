"""projection: how each event changes a user's rows, and batch folding."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from query_svc.projection import (
    ACTIVE,
    DEACTIVATED,
    ProjectedUser,
    ProjectionError,
    apply,
    project_batch,
    touched_ids,
)
from query_svc.source import StoredEvent
from tests.unit.query_svc.events import HASH1, HASH2, Log, new_id

pytestmark = pytest.mark.unit


def fold(events: list[StoredEvent]) -> ProjectedUser | None:
    user: ProjectedUser | None = None
    for e in events:
        user, _ = apply(user, e)
    return user


def test_created_makes_an_active_user_with_its_hash() -> None:
    log, uid = Log(), new_id()
    e = log.created(uid, "a@example.com", role="admin")
    user, login = apply(None, e)
    assert login is None
    assert user == ProjectedUser(
        id=uid,
        email="a@example.com",
        role="admin",
        status=ACTIVE,
        version=1,
        created_at=e.occurred_at,
        updated_at=e.occurred_at,
        password_hash=HASH1,
    )
    assert "password_hash" not in user.users_row()
    assert user.auth_row()["password_hash"] == HASH1


def test_every_event_type_is_reflected() -> None:
    log, uid = Log(), new_id()
    created = log.created(uid, "a@example.com")
    events = [
        created,
        log.password(uid),
        log.email(uid, "a@example.com", "b@example.com"),
        log.login(uid, "192.0.2.7"),
        log.login(uid, "192.0.2.8"),
        log.deactivated(uid, "left"),
    ]
    user: ProjectedUser | None = None
    logins = []
    for e in events:
        user, login = apply(user, e)
        if login is not None:
            logins.append(login)
    assert user is not None
    assert user.version == 6
    assert user.email == "b@example.com"
    assert user.password_hash == HASH2
    assert user.status == DEACTIVATED
    assert user.deactivated_at == events[5].occurred_at
    assert user.updated_at == events[5].occurred_at
    assert user.created_at == created.occurred_at
    assert user.login_count == 2
    assert user.last_login_at == events[4].occurred_at
    assert [(x.id, x.client_address, x.version) for x in logins] == [
        (4, "192.0.2.7", 4),
        (5, "192.0.2.8", 5),
    ]


def test_an_already_reflected_event_is_a_no_op() -> None:
    log, uid = Log(), new_id()
    events = [log.created(uid, "a@example.com"), log.login(uid)]
    user = fold(events)
    again, login = apply(user, events[1])
    assert again is user
    assert login is None


def test_a_version_gap_is_refused() -> None:
    log, uid = Log(), new_id()
    created = log.created(uid, "a@example.com")
    log.login(uid)  # version 2, never delivered
    third = log.login(uid)
    user, _ = apply(None, created)
    with pytest.raises(ProjectionError, match="version 3, the read model expects 2"):
        apply(user, third)


def test_a_stream_must_start_with_created() -> None:
    log, uid = Log(), new_id()
    log.versions[uid] = 0
    with pytest.raises(ProjectionError, match=r"not 'user\.created'"):
        apply(None, log.login(uid))


def test_a_second_created_is_refused() -> None:
    log, uid = Log(), new_id()
    user = fold([log.created(uid, "a@example.com")])
    with pytest.raises(ProjectionError, match=r"second 'user\.created'"):
        apply(user, log.created(uid, "a@example.com"))


def test_a_malformed_payload_is_refused_with_its_position() -> None:
    log, uid = Log(), new_id()
    user = fold([log.created(uid, "a@example.com")])
    bad = log.event(uid, "user.email.changed", old_email="a@example.com")
    with pytest.raises(ProjectionError, match="position 2"):
        apply(user, bad)


def test_an_unknown_event_type_only_bumps_version_and_time() -> None:
    log, uid = Log(), new_id()
    user = fold([log.created(uid, "a@example.com")])
    future = log.event(uid, "user.avatar.changed", url="x")
    after, login = apply(user, future)
    assert login is None
    assert after == replace(user, version=2, updated_at=future.occurred_at)  # type: ignore[type-var]


def test_batch_splits_new_and_existing_users() -> None:
    log, old_id, new = Log(), new_id(), new_id()
    before = fold([log.created(old_id, "x@example.com")])
    assert before is not None
    batch = [
        log.created(new, "y@example.com"),
        log.email(old_id, "x@example.com", "z@example.com"),
        log.login(new),
        log.email(new, "y@example.com", "x@example.com"),
    ]
    changes = project_batch(batch, {old_id: before})
    assert set(changes.inserted) == {new}
    assert set(changes.updated) == {old_id}
    # x is released by old_id and taken by a new user, whose row is inserted
    # after the updates: no mover takes a released address, so no parking.
    assert changes.email_moved == set()
    assert changes.inserted[new].email == "x@example.com"
    assert changes.inserted[new].login_count == 1
    assert changes.updated[old_id].email == "z@example.com"
    assert [x.id for x in changes.logins] == [4]
    assert changes.applied == 4


def test_movers_are_flagged_only_when_one_takes_an_address_another_released() -> None:
    log, a, b = Log(), new_id(), new_id()
    users = {
        a: fold([log.created(a, "a@example.com")]),
        b: fold([log.created(b, "b@example.com")]),
    }
    existing = {uid: user for uid, user in users.items() if user is not None}
    a_moves = log.email(a, "a@example.com", "n@example.com")
    assert project_batch([a_moves], existing).email_moved == set()
    b_takes_a_s_old_address = log.email(b, "b@example.com", "a@example.com")
    assert project_batch([a_moves, b_takes_a_s_old_address], existing).email_moved == {a, b}


def test_batch_skips_reflected_events_and_leaves_input_alone() -> None:
    log, uid = Log(), new_id()
    events = [log.created(uid, "a@example.com"), log.login(uid)]
    user = fold(events)
    assert user is not None
    changes = project_batch(events, {uid: user})
    assert changes.is_empty
    assert changes.applied == 0


def test_touched_ids_are_distinct_in_first_seen_order() -> None:
    log, a, b = Log(), new_id(), new_id()
    events = [log.created(a, "a@example.com"), log.created(b, "b@example.com"), log.login(a)]
    assert touched_ids(events) == [a, b]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["password", "email", "login"]), max_size=30), st.data())
def test_batch_boundaries_do_not_matter(steps: list[str], data: st.DataObject) -> None:
    """Folding in batches of any size gives the rows folding one by one gives."""
    log, uid = Log(), new_id()
    events = [log.created(uid, "e0@example.com")]
    email = "e0@example.com"
    for i, step in enumerate(steps):
        if step == "password":
            events.append(log.password(uid, HASH1 if i % 2 else HASH2))
        elif step == "email":
            new = f"e{i + 1}@example.com"
            events.append(log.email(uid, email, new))
            email = new
        else:
            events.append(log.login(uid))
    cut = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    rows: dict[str, ProjectedUser] = {}
    logins = 0
    for start, end in zip([0, *cut], [*cut, len(events)], strict=True):
        changes = project_batch(events[start:end], rows)
        rows.update(changes.inserted)
        rows.update(changes.updated)
        logins += len(changes.logins)
    assert rows[uid] == fold(events)
    assert logins == steps.count("login")
