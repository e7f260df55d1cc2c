"""Routing: the real route table's precedence, 404 and 405, conflicts refused."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.path_template import parse
from gateway.router import Entry, RouteConflict, RouteTable
from gateway.routes import HttpRoute, build_table, load_routes
from service_kit import descriptors

pytestmark = pytest.mark.unit

USER = "8d3e2c4a-1b2f-4c5d-9e8f-0a1b2c3d4e5f"


@pytest.fixture(scope="module")
def table() -> RouteTable[HttpRoute]:
    return build_table(load_routes(descriptors.descriptor_set(), descriptors.pool()))


@pytest.mark.parametrize(
    ("verb", "path", "method", "params"),
    [
        ("GET", "/events/count", "CountEvents", {}),
        ("GET", "/events/replay", "ReplayEvents", {}),
        ("GET", "/events/subscribe", "Subscribe", {}),
        ("GET", "/events", "ListEvents", {}),
        ("GET", f"/events/aggregate/{USER}", "GetAggregateEvents", {"aggregate_id": USER}),
        ("GET", "/replay/users/state-at", "ListStatesAt", {}),
        ("GET", f"/replay/user/{USER}/state-at", "GetStateAt", {"aggregate_id": USER}),
        ("GET", f"/replay/user/{USER}/state", "GetState", {"aggregate_id": USER}),
        ("GET", f"/users/{USER}", "GetUser", {"id": USER}),
        ("GET", f"/users/{USER}/logins", "GetLoginHistory", {"id": USER}),
        ("PUT", f"/users/{USER}/password", "ChangePassword", {"id": USER}),
        ("PUT", f"/users/{USER}/email", "ChangeEmail", {"id": USER}),
        ("POST", f"/users/{USER}/deactivate", "Deactivate", {"id": USER}),
        ("POST", f"/snapshots/{USER}", "CreateSnapshot", {"aggregate_id": USER}),
        ("GET", f"/snapshots/{USER}", "GetSnapshot", {"aggregate_id": USER}),
        ("GET", f"/snapshots/{USER}/state", "GetStateFromSnapshot", {"aggregate_id": USER}),
        ("GET", "/users", "ListUsers", {}),
        ("POST", "/register", "Register", {}),
        ("POST", "/login", "Login", {}),
        ("POST", "/admin/rebuild-read-model", "RebuildReadModel", {}),
    ],
)
def test_every_documented_route_resolves(
    table: RouteTable[HttpRoute], verb: str, path: str, method: str, params: dict[str, str]
) -> None:
    resolved = table.resolve(verb, path)
    assert resolved.target.rpc.name == method
    assert resolved.params == params


def test_unknown_path_is_404(table: RouteTable[HttpRoute]) -> None:
    with pytest.raises(GatewayError) as caught:
        table.resolve("GET", "/nowhere")
    assert caught.value.status == 404
    assert caught.value.code == "NOT_FOUND"


def test_known_path_wrong_verb_is_405_with_allow(table: RouteTable[HttpRoute]) -> None:
    with pytest.raises(GatewayError) as caught:
        table.resolve("DELETE", f"/snapshots/{USER}")
    assert caught.value.status == 405
    assert caught.value.headers["Allow"] == "GET, POST"


def test_bad_utf8_in_path_is_400(table: RouteTable[HttpRoute]) -> None:
    with pytest.raises(GatewayError) as caught:
        table.resolve("GET", "/users/%ff")
    assert caught.value.status == 400


def test_the_most_specific_template_wins_whatever_the_order() -> None:
    entries = [
        Entry("GET", parse("/events/{id}"), "variable"),
        Entry("GET", parse("/events/{path=**}"), "rest"),
        Entry("GET", parse("/events/count"), "literal"),
    ]
    for ordering in (entries, entries[::-1]):
        table = RouteTable(ordering)
        assert table.resolve("GET", "/events/count").target == "literal"
        assert table.resolve("GET", "/events/7").target == "variable"
        assert table.resolve("GET", "/events/7/8").target == "rest"


def test_a_verb_only_routes_to_its_own_templates() -> None:
    table = RouteTable(
        [
            Entry("GET", parse("/users/me"), "get-me"),
            Entry("PUT", parse("/users/{id}"), "put-user"),
        ]
    )
    assert table.resolve("PUT", "/users/me").target == "put-user"
    assert table.resolve("GET", "/users/me").target == "get-me"


def test_two_routes_for_the_same_requests_conflict() -> None:
    table = RouteTable([Entry("GET", parse("/users/{id}"), "a")])
    with pytest.raises(RouteConflict, match="conflicts"):
        table.add(Entry("GET", parse("/users/{user_id}"), "b"))
    table.add(Entry("POST", parse("/users/{user_id}"), "c"))  # another verb is fine


def test_bucketing_by_leading_literals_and_length_finds_every_kind_of_template() -> None:
    table = RouteTable(
        [
            Entry("GET", parse("/a/b/c"), "two literals"),
            Entry("GET", parse("/a/{x}"), "one literal"),
            Entry("GET", parse("/a/{rest=**}"), "literal then rest"),
            Entry("GET", parse("/{x}/b/d"), "variable first"),
            Entry("POST", parse("/watch:start"), "verb on the first segment"),
            Entry("POST", parse("/a/b:run"), "verb on the second segment"),
            Entry("GET", parse("/"), "root"),
        ]
    )
    assert table.resolve("GET", "/a/b/c").target == "two literals"
    assert table.resolve("GET", "/a/z").target == "one literal"
    assert table.resolve("GET", "/a/b").target == "one literal"
    assert table.resolve("GET", "/a/z/y/w").target == "literal then rest"
    assert table.resolve("GET", "/a").target == "literal then rest"
    assert table.resolve("GET", "/q/b/d").target == "variable first"
    assert table.resolve("GET", "/a/b/d").target == "literal then rest"  # literal first wins
    # Longer than every fixed template of its bucket: only ** can take it.
    assert table.resolve("GET", "/a/b/c/d").target == "literal then rest"
    assert table.resolve("GET", "/a/b/c/").target == "two literals"  # one trailing slash
    assert table.resolve("POST", "/watch:start").target == "verb on the first segment"
    assert table.resolve("POST", "/a/b:run").target == "verb on the second segment"
    assert table.resolve("GET", "/").target == "root"
    # 405 still lists every verb whose template matches, across buckets.
    with pytest.raises(GatewayError) as raised:
        table.resolve("DELETE", "/a/b:run")
    assert raised.value.status == 405
    assert raised.value.headers["Allow"] == "GET, POST"
