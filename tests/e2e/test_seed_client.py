"""A client of the seed works unchanged, except for a bearer token.

Every call goes to the seed's unprefixed routes on the seed's ports and
every answer is decoded into the seed's own types (tests/e2e/seed_shapes.py:
each key present with the seed's JSON type). Covered: every seed route,
the seed README's scenarios 1-4 and its seven-step journey (passwords of 8
characters or more, which the system requires), and what stays as it is
for security: bearer tokens, owner-or-admin, admin-only listings, redacted
hashes, unique emails (409), errors as ``{"error": ...}``.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from gateway.seed_format import SEED_ROUTES
from tests.e2e import seed_shapes as shapes
from tests.e2e.http_client import HttpClient
from tests.e2e.seed_client import SeedClient
from tests.e2e.support import between, unique_email

pytestmark = pytest.mark.e2e

REDACTED = "[REDACTED]"


@pytest.fixture
def seed(
    seed_http: HttpClient, seed_query_http: HttpClient, seed_store_http: HttpClient
) -> SeedClient:
    return SeedClient(seed_http, seed_query_http, seed_store_http)


@pytest.fixture
def admin(seed: SeedClient, admin_token: str) -> SeedClient:
    """The same client with the admin's token (listing users and events is for admins)."""
    return seed.with_token(admin_token)


def _stamps(events: list[shapes.Event]) -> dict[str, str]:
    """The first timestamp of each event type."""
    stamps: dict[str, str] = {}
    for event in events:
        stamps.setdefault(event.event_type, event.timestamp)
    return stamps


def test_every_seed_route_answers_the_seeds_types(seed: SeedClient, admin: SeedClient) -> None:
    for port in ("auth", "query"):
        shapes.decode(shapes.Health, seed.health(port))
    store_health = shapes.decode(shapes.StoreHealth, seed.health("store"))
    assert store_health.total_events > 0

    email, new_email = unique_email("seed-routes"), unique_email("seed-routes-new")
    registered = seed.register(email, "Routes-Pass-1")
    assert registered.message == "User registered successfully"
    session = seed.login(email, "Routes-Pass-1")
    assert (session.user_id, session.email) == (registered.id, email)
    me = seed.with_token(session.token)
    assert me.change_password(registered.id, "Routes-Pass-1", "Routes-Pass-2").message
    assert me.change_email(registered.id, new_email).message == "Email changed successfully"

    users = admin.users()
    listed = {u.ID: u for u in users}[registered.id]
    assert (listed.Email, listed.Status) in ((email, "active"), (new_email, "active"))

    mine = me.aggregate_events(registered.id, "from_version=0")
    assert mine.aggregate_id == registered.id
    assert mine.count == len(mine.events) == 4
    assert [e.version for e in mine.events] == [1, 2, 3, 4]
    assert all(e.aggregate_id == registered.id for e in mine.events)
    created = mine.events[0].data()
    assert (created["email"], created["password_hash"]) == (email, REDACTED)
    assert me.aggregate_events(registered.id, "from_version=3").count == 2

    page = admin.events("limit=10&offset=0")
    assert page.count == len(page.events) <= 10
    assert page.events[0].version == 1
    assert admin.events(f"aggregate_id={registered.id}&offset=3").count == 1
    after = admin.events(f"aggregate_id={registered.id}&start_time={mine.events[2].timestamp}")
    assert [e.version for e in after.events] == [3, 4]
    total = admin.count().total_events
    assert total >= 4
    replayed = admin.replay(mine.events[0].timestamp)
    assert replayed.since == mine.events[0].timestamp
    assert replayed.count == len(replayed.events) >= 4

    state = me.state(registered.id)
    assert state.user_id == state.state.id == registered.id
    assert (state.state.email, state.state.status, state.state.event_count) == (
        new_email,
        "active",
        4,
    )
    stamps = _stamps(mine.events)
    at = me.state_at(registered.id, between(stamps["user.created"], stamps["user.login.recorded"]))
    assert (at.state.email, at.state.version, at.state.event_count) == (email, 1, 1)
    history = me.history(registered.id)
    assert history.total_changes == len(history.history) == 4
    assert [s.email for s in history.history] == [email, email, email, new_email]
    compared = me.compare(registered.id, stamps["user.created"], stamps["user.email.changed"])
    assert compared.changes["email"] == shapes.FieldChange(email, new_email)
    assert (compared.before.event_count, compared.after.event_count) == (1, 4)

    snapped = me.create_snapshot(registered.id)
    assert snapped.aggregate_id == registered.id
    latest = me.snapshot(registered.id)
    assert (latest.aggregate_id, latest.version, latest.state.email) == (
        registered.id,
        4,
        new_email,
    )
    flat = me.snapshot_state(registered.id)
    assert (flat.aggregate_id, flat.version, flat.email) == (registered.id, 4, new_email)
    assert (flat.status, flat.event_count) == ("active", 4)

    assert set(SEED_ROUTES) <= seed.called
    assert ("GET", "/health") in seed.called
    # The OpenAPI document describes these answers truthfully.
    document = seed.store.get("/openapi.json").json()
    for (method, route), body in seed.answers.items():
        operation = document["paths"][route][method.lower()]
        success = next(r for code, r in operation["responses"].items() if code[0] == "2")
        schema = success["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": document["components"]}
        )
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], (method, route, errors)


def test_scenario_1_basic_cqrs_flow(seed: SeedClient, admin: SeedClient) -> None:
    # 1. Register user
    email = unique_email("seed-scenario1")
    registered = seed.register(email, "pass1234")
    # 2. Wait for the read model (the seed waits 2-3 s; this polls, bounded)
    # 3. Query users (read model): listing every user is for admins now.
    user = admin.wait_for_user(email)
    # Should see the new user!
    assert (user.ID, user.Email, user.Status) == (registered.id, email, "active")


def test_scenario_2_event_sourcing_and_grpc(seed: SeedClient) -> None:
    # 1. Register; save the user_id from the response
    email = unique_email("seed-scenario2")
    user_id = seed.register(email, "pass1234").id
    session = seed.login(email, "pass1234")
    assert session.user_id == user_id
    me = seed.with_token(session.token)
    # 2. Change Password (triggers gRPC)
    assert me.change_password(user_id, "pass1234", "newpass456").message == (
        "Password changed successfully"
    )
    # 4. View events in Event Store: user.created, user.password.changed
    events = me.aggregate_events(user_id)
    assert [e.event_type for e in events.events] == [
        "user.created",
        "user.login.recorded",
        "user.password.changed",
    ]
    assert all(e.data().get("password_hash", REDACTED) == REDACTED for e in events.events)
    assert seed.login(email, "newpass456").user_id == user_id
    old = seed.fails("query", "POST", "/login", body=f'{{"email":"{email}","password":"pass1234"}}')
    assert old.status == 401


def test_scenario_3_time_travel(seed: SeedClient) -> None:
    email, new_email = unique_email("seed-scenario3"), unique_email("seed-scenario3-new")
    # 1. Register user
    user_id = seed.register(email, "pass1234").id
    me = seed.with_token(seed.login(email, "pass1234").token)
    # 2. Change password; 3. change email
    me.change_password(user_id, "pass1234", "newpass99")
    me.change_email(user_id, new_email)
    at = _stamps(me.aggregate_events(user_id).events)
    # 4. Time travel to between registration and the next event: only registered
    first = me.state_at(user_id, between(at["user.created"], at["user.login.recorded"]))
    assert (first.state.email, first.state.event_count, first.state.status) == (email, 1, "active")
    # 5. Time travel to between the password change and the email change
    moment = between(at["user.password.changed"], at["user.email.changed"])
    second = me.state_at(user_id, moment)
    assert (second.point_in_time, second.state.email, second.state.event_count) == (
        moment,
        email,
        3,
    )
    # 6. Compare states
    compared = me.compare(user_id, at["user.created"], at["user.email.changed"])
    assert (compared.time1, compared.time2) == (at["user.created"], at["user.email.changed"])
    assert compared.changes["email"] == shapes.FieldChange(email, new_email)
    assert compared.changes["password"] == shapes.FieldChange("unchanged", "changed")
    # The seed's hard-coded 2025 times are before this user existed: 404, as in the seed.
    for path in (
        f"/replay/user/{user_id}/state-at?timestamp=2025-10-25T19:57:30Z",
        f"/replay/user/{user_id}/compare?time1=2025-10-25T19:57:00Z&time2=2025-10-25T20:00:00Z",
    ):
        assert me.fails("store", "GET", path).status == 404


def test_scenario_4_snapshots(seed: SeedClient, admin: SeedClient) -> None:
    # 1. Register and make 5 password changes (the admin's token: no login event,
    # so the stream holds exactly the seed's 6 events)
    email = unique_email("seed-scenario4")
    user_id = seed.register(email, "pass1-secure").id
    for i in range(1, 6):
        admin.change_password(user_id, f"pass{i}-secure", f"pass{i + 1}-secure")
    # 2. Get state (replays 6 events)
    state = admin.state(user_id)
    assert (state.state.version, state.state.event_count) == (6, 6)
    # 3. Create snapshot
    assert admin.create_snapshot(user_id).aggregate_id == user_id
    # 4. One more change
    admin.change_password(user_id, "pass6-secure", "pass7-secure")
    # 5. Get state with snapshot (snapshot + 1 event)
    flat = admin.snapshot_state(user_id)
    assert (flat.aggregate_id, flat.version, flat.event_count, flat.email) == (
        user_id,
        7,
        7,
        email,
    )
    assert admin.snapshot(user_id).version == 6


def test_the_seeds_complete_user_journey(seed: SeedClient) -> None:
    email = unique_email("seed-journey")
    # 1. Register User
    user_id = seed.register(email, "DemoPass123!").id
    # 2. Wait (the seed's "wait for Kafka" request: the query service's health)
    shapes.decode(shapes.Health, seed.health("query"))
    # 3. Login
    session = seed.login(email, "DemoPass123!")
    assert session.user_id == user_id
    me = seed.with_token(session.token)
    # 4. Change Password
    me.change_password(user_id, "DemoPass123!", "NewDemoPass456!")
    # 5. View Event History
    events = me.aggregate_events(user_id).events
    assert [e.event_type for e in events] == [
        "user.created",
        "user.login.recorded",
        "user.password.changed",
    ]
    # 6. Time Travel: the state before the password change
    stamps = _stamps(events)
    before = me.state_at(
        user_id, between(stamps["user.login.recorded"], stamps["user.password.changed"])
    )
    assert (before.state.version, before.state.event_count) == (2, 2)
    # 7. Create Snapshot
    assert me.create_snapshot(user_id).aggregate_id == user_id


def test_security_stays_as_it_is_on_the_seed_routes(
    seed: SeedClient, seed_store_http: HttpClient
) -> None:
    email = unique_email("seed-guarded")
    user_id = seed.register(email, "Guarded-Pass-1").id
    me = seed.with_token(seed.login(email, "Guarded-Pass-1").token)
    # Admin-only listings with a user's token.
    for port, path in (("query", "/users"), ("store", "/events"), ("store", "/events/count")):
        refused = me.fails(port, "GET", path)
        assert refused.status == 403, refused.describe()
        assert refused.json()["code"] == "PERMISSION_DENIED"
    # No token at all; another user's data.
    assert seed.fails("store", "GET", f"/replay/user/{user_id}/state").status == 401
    other = unique_email("seed-other")
    other_id = seed.register(other, "Other-Pass-1").id
    assert me.fails("store", "GET", f"/events/aggregate/{other_id}").status == 403
    # Unique emails, 8-character passwords.
    duplicate = seed.fails(
        "auth", "POST", "/register", body=f'{{"email":"{email}","password":"Another-Pass-1"}}'
    )
    assert duplicate.status == 409, duplicate.describe()
    short = seed.fails(
        "auth", "POST", "/register", body=f'{{"email":"{unique_email("s")}","password":"pass123"}}'
    )
    assert short.status == 400
    assert short.json()["error"].startswith("password:")
    # Hashes are redacted in the JSON-encoded payloads too.
    raw = seed_store_http.get(f"/events/aggregate/{user_id}", token=me.token)
    payload = json.loads(raw.json()["events"][0]["payload"])
    assert payload["password_hash"] == REDACTED


def test_unknown_query_parameters_are_ignored_on_seed_routes_only(
    admin: SeedClient, seed_store_http: HttpClient, store_http: HttpClient, admin_token: str
) -> None:
    lenient = seed_store_http.get("/events/count?utm_source=x&event_type=", token=admin_token)
    assert lenient.status == 200, lenient.describe()
    assert lenient.headers["x-ignored-query-parameters"] == "utm_source"
    shapes.decode(shapes.EventCount, lenient.json())
    strict = store_http.get("/events/count?utm_source=x", token=admin_token)
    assert strict.status == 400, strict.describe()
    assert strict.error.startswith("utm_source: unknown query parameter")
    # A known parameter with a bad value is refused on both.
    bad = seed_store_http.get("/events?limit=1001", token=admin_token)
    assert bad.status == 400, bad.describe()
    assert bad.error.startswith("limit:")
