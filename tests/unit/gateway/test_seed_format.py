"""The two profiles: where routes are served, and the seed's wire format on real messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import Message

from gateway import app, seed_format
from gateway.errors import GatewayError
from gateway.profiles import served_routes
from gateway.routes import HttpRoute, RouteError, load_routes
from gateway.seed_format import SEED_ROUTES, seed_query
from gateway.settings import GatewaySettings
from gateway.transcode import build_request, render
from service_kit import descriptors
from tests.auth_support import TEST_ENV

from . import synthetic

pytestmark = pytest.mark.unit

ROUTES = load_routes(descriptors.descriptor_set(), descriptors.pool())
BY_NAME: dict[str, HttpRoute] = {r.rpc.name: r for r in ROUTES}


def _seed(name: str) -> seed_format.SeedRoute:
    route = BY_NAME[name]
    return SEED_ROUTES[(route.verb, route.template.text)]


# --- where routes are served -----------------------------------------------------


def test_every_route_is_served_under_v1_and_unprefixed() -> None:
    served = served_routes(ROUTES)
    assert len(served) == 2 * len(ROUTES)
    texts = {(s.verb, s.template.text): s for s in served}
    for route in ROUTES:
        ours = texts[(route.verb, "/v1" + route.template.text)]
        assert (ours.route, ours.seed, ours.profile) == (route, None, "v1")
        bare = texts[(route.verb, route.template.text)]
        assert bare.route is route
        expected = "seed" if (route.verb, route.template.text) in SEED_ROUTES else "unprefixed"
        assert bare.profile == expected
    assert sum(s.profile == "seed" for s in served) == len(SEED_ROUTES) == 16
    assert texts[("GET", "/users/{id}")].profile == "unprefixed"
    assert texts[("GET", "/events/subscribe")].profile == "unprefixed"


def test_a_new_annotated_rpc_is_served_at_both_places_in_our_shape() -> None:
    probe = load_routes(synthetic.file_set(), synthetic.pool())
    served = served_routes(probe, {})
    assert {s.profile for s in served} == {"v1", "unprefixed"}
    assert ("GET", "/v1/probes/{id}") in {(s.verb, s.template.text) for s in served}


def test_a_seed_route_without_its_rpc_stops_the_start() -> None:
    without_login = [r for r in ROUTES if r.rpc.name != "Login"]
    with pytest.raises(RouteError, match="seed route POST /login"):
        served_routes(without_login)


def test_the_app_builds_with_both_profiles_and_the_local_routes() -> None:
    settings = GatewaySettings.from_env(dict(TEST_ENV))
    built = app.build_app(settings)
    table = built.state.gateway.table
    assert table.resolve("GET", "/v1/users").target.profile == "v1"
    assert table.resolve("GET", "/users").target.profile == "seed"
    assert table.resolve("GET", "/users/u-1").target.profile == "unprefixed"
    assert table.resolve("GET", "/v1/users/u-1/logins").target.profile == "v1"
    health = table.resolve("GET", "/health").target
    assert callable(health) and not hasattr(health, "profile")


# --- the seed's query parameters --------------------------------------------------


def test_seed_query_keeps_fields_maps_the_seeds_names_and_ignores_the_rest() -> None:
    route = BY_NAME["ListEvents"]
    kept, ignored = seed_query(
        _seed("ListEvents"),
        route,
        [
            ("limit", "10"),
            ("offset", "0"),
            ("start_time", "2025-10-01T00:00:00Z"),
            ("end_time", "2025-12-31T23:59:59Z"),
            ("event_type", ""),  # Gin's c.Query: empty is absent
            ("colour", "red"),
            ("colour", "blue"),
            ("page", "2"),
        ],
    )
    assert kept == [
        ("limit", "10"),
        ("offset", "0"),
        ("since", "2025-10-01T00:00:00Z"),
        ("until", "2025-12-31T23:59:59Z"),
    ]
    assert ignored == ["colour", "page"]


def test_seed_query_ignores_path_fields_and_everything_on_body_routes() -> None:
    route = BY_NAME["GetAggregateEvents"]
    kept, ignored = seed_query(
        _seed("GetAggregateEvents"), route, [("aggregate_id", "x"), ("from_version", "0")]
    )
    assert (kept, ignored) == ([("from_version", "0")], ["aggregate_id"])
    kept, ignored = seed_query(_seed("Login"), BY_NAME["Login"], [("email", "a@b.cc")])
    assert (kept, ignored) == ([], ["email"])


def test_the_ignored_names_header_cannot_carry_a_line_break() -> None:
    header = seed_format.ignored_header(["utm\r\nSet-Cookie: x=1", "é" + "a" * 100, "ok"])
    assert header == "utmSet-Cookie: x=1, " + "a" * 64 + ", ok"
    assert len(seed_format.ignored_header(["n" * 64] * 100)) == 1000


def test_seed_query_defaults_fill_only_what_is_not_given() -> None:
    route, seed = BY_NAME["ListUsers"], _seed("ListUsers")
    assert seed_query(seed, route, [])[0] == [("page_size", "1000")]
    assert seed_query(seed, route, [("page_size", "5")])[0] == [("page_size", "5")]


# --- the seed's answers ----------------------------------------------------------


def _answer(name: str, reply: Message, query: list[tuple[str, str]] | None = None) -> Any:
    route = BY_NAME[name]
    seed = _seed(name)
    params = {p: "6f1c2a9e-0000-4000-8000-000000000001" for p in route.path_fields}
    request = build_request(route, path_params=params, query=query or [], body=b"")
    data = render(route, reply)
    assert seed.render is not None
    headers: dict[str, str] = {}
    answer = seed.render(request, data, headers)
    return json.loads(json.dumps(answer)), headers


def _state(message: Any, user_id: str = "u-1", version: int = 2) -> None:
    message.user_id = user_id
    message.email = "a@example.com"
    message.role = "user"
    message.status = 1
    message.version = version
    message.created_at.FromJsonString("2025-10-25T19:57:00Z")
    message.updated_at.FromJsonString("2025-10-25T19:58:00Z")


def _reply(name: str) -> Any:
    return BY_NAME[name].rpc.response_class()


def test_events_carry_id_and_a_json_encoded_payload() -> None:
    reply = _reply("GetAggregateEvents")
    reply.aggregate_id, reply.count = "u-1", 1
    event = reply.events.add(event_id="e-1", aggregate_id="u-1", version=1, position=7)
    event.event_type = "user.created"
    event.timestamp.FromJsonString("2025-10-25T19:57:00Z")
    event.payload.update({"email": "a@example.com", "password_hash": "[REDACTED]"})
    answer, _ = _answer("GetAggregateEvents", reply)
    (seen,) = answer["events"]
    assert seen["id"] == seen["event_id"] == "e-1"
    assert json.loads(seen["payload"]) == {"email": "a@example.com", "password_hash": "[REDACTED]"}
    assert (seen["timestamp"], seen["version"], seen["position"]) == ("2025-10-25T19:57:00Z", 1, 7)
    assert (answer["aggregate_id"], answer["count"]) == ("u-1", 1)


def test_login_adds_user_id_and_email() -> None:
    reply = _reply("Login")
    reply.token, reply.token_type, reply.expires_in = "t", "Bearer", 3600
    reply.user.id, reply.user.email = "u-1", "a@example.com"
    answer, _ = _answer("Login", reply)
    assert (answer["token"], answer["user_id"], answer["email"]) == ("t", "u-1", "a@example.com")
    assert answer["user"]["status"] == "unspecified"  # our nested user stays beside


def test_users_are_a_bare_array_with_go_names_and_the_next_page_in_a_header() -> None:
    reply = _reply("ListUsers")
    user = reply.users.add(id="u-1", email="a@example.com", role="user", status=2)
    user.created_at.FromJsonString("2025-10-25T19:57:00Z")
    user.updated_at.FromJsonString("2025-10-25T19:58:00Z")
    reply.next_page_token = "u-1"
    answer, headers = _answer("ListUsers", reply)
    assert answer == [
        {
            "ID": "u-1",
            "Email": "a@example.com",
            "Role": "user",
            "Status": "deactivated",
            "Version": 0,
            "CreatedAt": "2025-10-25T19:57:00Z",
            "UpdatedAt": "2025-10-25T19:58:00Z",
            "LoginCount": 0,
            "EmailVerified": False,
        }
    ]
    assert headers == {"X-Next-Page-Token": "u-1"}


def test_count_is_total_events() -> None:
    reply = _reply("CountEvents")
    reply.count = 12
    assert _answer("CountEvents", reply)[0] == {"count": 12, "total_events": 12}


def test_states_carry_id_event_count_and_status_words() -> None:
    reply = _reply("GetState")
    _state(reply.state)
    reply.events_replayed = 2
    answer, _ = _answer("GetState", reply)
    assert answer["user_id"] == "u-1"
    assert answer["message"] == "State reconstructed from 2 events"
    state = answer["state"]
    assert (state["id"], state["status"], state["event_count"]) == ("u-1", "active", 2)


def test_state_at_names_the_point_in_time_even_when_asked_by_version() -> None:
    reply = _reply("GetStateAt")
    _state(reply.state)
    reply.as_of.FromJsonString("2026-01-01T00:00:00Z")
    answer, _ = _answer("GetStateAt", reply, [("timestamp", "2026-01-01T00:00:00Z")])
    assert answer["point_in_time"] == "2026-01-01T00:00:00Z"
    reply.ClearField("as_of")
    by_version, _ = _answer("GetStateAt", reply, [("version", "2")])
    assert by_version["point_in_time"] == "2025-10-25T19:58:00Z"  # the state's last event


def test_history_is_a_list_of_states_with_their_events_beside() -> None:
    reply = _reply("GetHistory")
    reply.aggregate_id, reply.count = "u-1", 2
    for version in (1, 2):
        entry = reply.entries.add()
        entry.event.event_id, entry.event.version = f"e-{version}", version
        _state(entry.state, version=version)
    answer, _ = _answer("GetHistory", reply)
    assert answer["user_id"] == "u-1"
    assert answer["total_changes"] == 2
    assert [s["event_count"] for s in answer["history"]] == [1, 2]
    assert [e["event"]["id"] for e in answer["entries"]] == ["e-1", "e-2"]
    assert all(isinstance(e["event"]["payload"], str) for e in answer["entries"])


def test_compare_changes_are_an_object_keyed_by_field() -> None:
    reply = _reply("CompareStates")
    reply.aggregate_id = "u-1"
    _state(reply.state1, version=1)
    _state(reply.state2, version=2)
    reply.changes.add(field="email", before="a@example.com", after="b@example.com")
    reply.changes.add(field="status", before="active", after="deactivated")
    reply.change_count = 2
    times = [("time1", "2025-10-25T19:57:00Z"), ("time2", "2025-10-25T20:00:00Z")]
    answer, _ = _answer("CompareStates", reply, times)
    assert (answer["time1"], answer["time2"]) == ("2025-10-25T19:57:00Z", "2025-10-25T20:00:00Z")
    assert answer["changes"] == {
        "email": {"before": "a@example.com", "after": "b@example.com"},
        "status": {"before": "active", "after": "deactivated"},
    }
    assert (answer["before"]["event_count"], answer["after"]["event_count"]) == (1, 2)


def test_compare_before_the_user_existed_is_404() -> None:
    reply = _reply("CompareStates")
    reply.aggregate_id = "u-1"
    _state(reply.state2)
    times = [("time1", "2025-10-25T19:58:00Z"), ("time2", "2025-10-25T20:00:00Z")]
    with pytest.raises(GatewayError) as raised:
        _answer("CompareStates", reply, times)
    assert raised.value.status == 404
    assert raised.value.message == "user u-1 did not exist at 2025-10-25T19:58:00Z"


def test_snapshot_routes_hoist_the_seeds_keys() -> None:
    created = _reply("CreateSnapshot")
    created.snapshot.aggregate_id, created.snapshot.version = "u-1", 2
    _state(created.snapshot.state)
    created.message = "Snapshot created"
    answer, _ = _answer("CreateSnapshot", created)
    assert (answer["aggregate_id"], answer["message"]) == ("u-1", "Snapshot created")
    latest = _reply("GetSnapshot")
    latest.snapshot.CopyFrom(created.snapshot)
    answer, _ = _answer("GetSnapshot", latest)
    assert (answer["aggregate_id"], answer["version"], answer["state"]["id"]) == ("u-1", 2, "u-1")
    flat = _reply("GetStateFromSnapshot")
    _state(flat.state)
    flat.snapshot_used, flat.snapshot_version = True, 2
    answer, _ = _answer("GetStateFromSnapshot", flat)
    for key, value in {
        "aggregate_id": "u-1",
        "version": 2,
        "email": "a@example.com",
        "status": "active",
        "created_at": "2025-10-25T19:57:00Z",
        "updated_at": "2025-10-25T19:58:00Z",
        "event_count": 2,
        "snapshot_used": True,
    }.items():
        assert answer[key] == value, key


def test_health_gets_total_events() -> None:
    body = seed_format.health_body({"status": "ok", "event_count": 5})
    assert body["total_events"] == 5
    assert (
        seed_format.health_body({"status": "unavailable", "event_count": None})["total_events"]
        is None
    )
