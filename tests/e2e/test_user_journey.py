"""The seed's seven-step "Complete User Journey", as one user would walk it, under /v1.

register → login → change password → change email → view events → time
travel → snapshot, each step checking what the user sees in our shapes,
through the three gateway ports the seed gives its three services. The
seed's own shapes on its unprefixed routes: test_seed_client.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.http_client import HttpClient
from tests.e2e.support import between, login, register, unique_email

pytestmark = pytest.mark.e2e


def test_complete_user_journey(
    http: HttpClient, query_http: HttpClient, store_http: HttpClient
) -> None:
    email, new_email = unique_email("journey"), unique_email("journey-new")
    first_password, second_password = "Journey-Pass-1", "Journey-Pass-2"

    # 1. Register
    registered = http.post("/register", json_body={"email": email, "password": first_password})
    assert registered.status == 201, registered.describe()
    user_id = registered.json()["id"]
    assert registered.json()["version"] == 1

    # 2. Login (waiting for the registration's position: login reads the read model)
    logged_in = query_http.post(
        "/login",
        json_body={"email": email.upper(), "password": first_password},
        headers={"X-Min-Position": str(registered.json()["position"])},
    )
    assert logged_in.status == 200, logged_in.describe()
    session = logged_in.json()
    assert session["token_type"] == "Bearer"
    assert 0 < session["expires_in"] <= 3600
    assert session["user"]["id"] == user_id
    assert session["user"]["email"] == email  # normalised to lower case
    token = session["token"]

    # 3. Change password
    password = http.put(
        f"/users/{user_id}/password",
        json_body={"old_password": first_password, "new_password": second_password},
        token=token,
    )
    assert password.status == 200, password.describe()
    assert password.json()["version"] == 3  # created, login recorded, password changed

    # 4. Change email
    changed = http.put(f"/users/{user_id}/email", json_body={"new_email": new_email}, token=token)
    assert changed.status == 200, changed.describe()
    assert (changed.json()["email"], changed.json()["version"]) == (new_email, 4)
    # The read model follows: the user sees the new email and its logins.
    me = query_http.get(f"/users/{user_id}?min_position={changed.json()['position']}", token=token)
    assert me.status == 200, me.describe()
    assert me.json()["user"]["email"] == new_email
    assert me.json()["user"]["login_count"] == 1
    assert me.json()["user"]["email_verified"] is False
    logins = query_http.get(f"/users/{user_id}/logins", token=token)
    assert logins.status == 200, logins.describe()
    assert logins.json()["count"] == 1
    # Only the new email and the new password log in now.
    after = changed.json()["position"]
    assert login(query_http, new_email, second_password, after=after)
    for old_email, old_password in ((email, second_password), (new_email, first_password)):
        refused = query_http.post(
            "/login", json_body={"email": old_email, "password": old_password}
        )
        assert refused.status == 401, refused.describe()

    # 5. View events
    events = store_http.get(f"/events/aggregate/{user_id}", token=token)
    assert events.status == 200, events.describe()
    listed = events.json()["events"]
    # A login is recorded before its answer: the second login is the fifth event.
    assert [e["event_type"] for e in listed] == [
        "user.created",
        "user.login.recorded",
        "user.password.changed",
        "user.email.changed",
        "user.login.recorded",
    ]
    assert listed[3]["payload"] == {"old_email": email, "new_email": new_email}
    history = store_http.get(f"/replay/user/{user_id}/history", token=token)
    assert history.status == 200, history.describe()
    assert "password" in history.json()["entries"][2]["changed_fields"]

    # 6. Time travel: just before the email changed, after the password did
    stamps = [e["timestamp"] for e in listed]
    moment = between(stamps[2], stamps[3])
    past = store_http.get(f"/replay/user/{user_id}/state-at?timestamp={moment}", token=token)
    assert past.status == 200, past.describe()
    state = past.json()["state"]
    assert (state["email"], state["password_version"], state["version"]) == (email, 2, 3)
    # The change ended every other session of the user; this one stayed signed in.
    assert state["credential_version"] == 3
    by_version = store_http.get(f"/replay/user/{user_id}/state-at?version=1", token=token)
    assert by_version.status == 200, by_version.describe()
    assert by_version.json()["state"]["login_count"] == 0

    # 7. Snapshot
    snapshot = store_http.post(f"/snapshots/{user_id}", token=token)
    assert snapshot.status == 201, snapshot.describe()
    stored = snapshot.json()["snapshot"]
    assert stored["state"]["email"] == new_email
    assert stored["version"] == 5
    from_snapshot = store_http.get(f"/snapshots/{user_id}/state", token=token)
    assert from_snapshot.status == 200, from_snapshot.describe()
    assert from_snapshot.json()["snapshot_used"] is True
    assert from_snapshot.json()["events_replayed"] == 0


def test_an_email_belongs_to_one_user_at_a_time(http: HttpClient) -> None:
    first, second = register(http, "owner"), register(http, "other")
    # Registering it again, in any case, is a conflict.
    again = http.post(
        "/register", json_body={"email": first.email.upper(), "password": "Another-Pass-1"}
    )
    assert again.status == 409, again.describe()
    assert (again.code, again.error) == ("ALREADY_EXISTS", "email: already registered")
    # So is taking it as a new email.
    token = login(http, second.email, second.password, after=second.position)
    taken = http.put(f"/users/{second.id}/email", json_body={"new_email": first.email}, token=token)
    assert taken.status == 409, taken.describe()
    assert taken.error.startswith("new_email:")
    # An email given up is free again.
    moved = http.put(
        f"/users/{second.id}/email", json_body={"new_email": unique_email("moved")}, token=token
    )
    assert moved.status == 200, moved.describe()
    reused = http.post("/register", json_body={"email": second.email, "password": "Another-Pass-1"})
    assert reused.status == 201, reused.describe()


def test_login_right_after_register_or_password_change_needs_no_position(
    http: HttpClient, query_http: HttpClient
) -> None:
    # The seed's clients register then log in at once; the read model may lag
    # by milliseconds, which must neither fail the login nor count against it.
    for _ in range(5):
        email = unique_email("instant")
        registered = http.post(
            "/register", json_body={"email": email, "password": "Instant-Pass-1"}
        )
        assert registered.status == 201, registered.describe()
        first = query_http.post("/login", json_body={"email": email, "password": "Instant-Pass-1"})
        assert first.status == 200, first.describe()
        user_id = registered.json()["id"]
        changed = http.put(
            f"/users/{user_id}/password",
            json_body={"old_password": "Instant-Pass-1", "new_password": "Instant-Pass-2"},
            token=first.json()["token"],
        )
        assert changed.status == 200, changed.describe()
        again = query_http.post("/login", json_body={"email": email, "password": "Instant-Pass-2"})
        assert again.status == 200, again.describe()
