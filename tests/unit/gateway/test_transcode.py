"""HTTP request → message and message → JSON, on the probe contract and the real one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import Message

from gateway.errors import GatewayError
from gateway.routes import HttpRoute, load_routes
from gateway.transcode import build_request, dumps, message_to_dict, parse_body, render
from service_kit import descriptors

from . import synthetic

pytestmark = pytest.mark.unit


def _routes() -> dict[str, HttpRoute]:
    return {r.rpc.name: r for r in load_routes(synthetic.file_set(), synthetic.pool())}


def _real() -> dict[str, HttpRoute]:
    return {r.rpc.name: r for r in load_routes(descriptors.descriptor_set(), descriptors.pool())}


ROUTES = _routes()
REAL = _real()


def build(
    name: str,
    *,
    path: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    routes: dict[str, HttpRoute] = ROUTES,
) -> dict[str, Any]:
    message = build_request(routes[name], path_params=path or {}, query=query or [], body=body)
    return message_to_dict(message)


def refused(name: str, **kwargs: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        build(name, **kwargs)
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_ARGUMENT"
    return caught.value


# --- query parameters ----------------------------------------------------------


def test_query_parameters_fill_every_kind_of_field() -> None:
    got = build(
        "List",
        query=[
            ("tags", "a"),
            ("tags", "b"),
            ("inner.note", "n"),
            ("inner.level", "3"),
            ("big", "9007199254740993"),
            ("small", "7"),
            ("flag", "true"),
            ("ratio", "0.5"),
            ("blob", "aGk="),
            ("at", "2025-10-25T19:58:00Z"),
            ("maybe", "5"),
            ("color", "COLOR_RED"),
            ("colors", "blue"),
            ("colors", "1"),
            ("left", "x"),
            ("bigs", "-4"),
        ],
    )
    assert got["tags"] == ["a", "b"]
    assert got["inner"] == {"note": "n", "level": 3}
    assert got["big"] == "9007199254740993"  # beyond 2**53: kept a string on output
    assert got["small"] == 7
    assert got["flag"] is True
    assert got["ratio"] == 0.5
    assert got["blob"] == "aGk="
    assert got["at"] == "2025-10-25T19:58:00Z"
    assert got["maybe"] == 5
    assert got["color"] == "red"  # enums read by name, word or number; written as words
    assert got["colors"] == ["blue", "red"]
    assert got["left"] == "x"
    assert got["bigs"] == [-4]


def test_json_names_are_accepted_for_query_parameters() -> None:
    assert build("ListStatesAt", query=[("pageSize", "5")], routes=REAL)["page_size"] == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("small", "abc")], "small: expected an integer, got 'abc'"),
        ([("small", "-1")], "small: -1 is outside 0..4294967295"),
        ([("small", "1.5")], "small: expected an integer"),
        ([("big", "1e3")], "big: expected an integer"),
        ([("flag", "yes")], "flag: expected true or false"),
        ([("ratio", "abc")], "ratio: expected a number"),
        ([("at", "notatime")], "at: expected an RFC 3339 time"),
        ([("color", "RED")], "color: expected one of unspecified, red, blue"),
        ([("maybe", "x")], "maybe: expected an integer"),
        ([("blob", "***")], "blob: expected base64"),
        ([("nope", "1")], "nope: unknown query parameter; accepted: id, tags, inner.note"),
        ([("inner", "x")], "inner: is a message; give its fields as inner.<field>"),
        ([("inner.nope", "x")], "inner.nope: unknown query parameter"),
        ([("counts", "x")], "counts: a map cannot be given as a query parameter"),
        ([("small", "1"), ("small", "2")], "small: given more than once"),
        ([("left", "x"), ("right", "1")], "left, right: give only one of them"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_field(
    query: list[tuple[str, str]], message: str
) -> None:
    assert refused("List", query=query).message.startswith(message)


def test_real_contract_query_errors() -> None:
    assert refused("ListEvents", query=[("limit", "abc")], routes=REAL).message.startswith(
        "limit: expected an integer"
    )
    error = refused(
        "GetStateAt", path={"aggregate_id": "u"}, query=[("timestamp", "x")], routes=REAL
    )
    assert error.message.startswith("timestamp: expected an RFC 3339 time")


def test_an_unencoded_plus_in_a_timestamp_offset_is_restored() -> None:
    got = build("List", query=[("at", "2025-01-01T02:00:00 02:00")])
    assert got["at"] == "2025-01-01T00:00:00Z"


def test_timestamps_enums_and_int64_from_query_on_the_real_contract() -> None:
    got = build(
        "ListEvents",
        query=[("since", "2025-01-01T00:00:00+02:00"), ("after_position", "12"), ("limit", "5")],
        routes=REAL,
    )
    assert got["since"] == "2024-12-31T22:00:00Z"
    assert got["after_position"] == 12
    for status in ("active", "USER_STATUS_ACTIVE", "1"):
        users = build("ListUsers", query=[("status", status)], routes=REAL)
        assert users["status"] == "active"


# --- path parameters -------------------------------------------------------------


def test_path_parameters_fill_their_fields_even_nested() -> None:
    assert build("Get", path={"id": "p-1"})["id"] == "p-1"
    assert build("Nested", path={"inner.note": "deep"})["inner"]["note"] == "deep"


def test_a_path_field_cannot_be_given_again_in_the_query() -> None:
    error = refused("Get", path={"id": "p-1"}, query=[("id", "p-2")])
    assert error.message == "id: is given by the path; not accepted as a query parameter"


def test_path_parameters_override_the_body() -> None:
    got = build(
        "ChangePassword",
        path={"id": "from-path"},
        body=b'{"id": "from-body", "old_password": "a", "newPassword": "b"}',
        routes=REAL,
    )
    assert got == {"id": "from-path", "old_password": "a", "new_password": "b"}


# --- bodies ------------------------------------------------------------------------


def test_body_star_is_the_whole_message() -> None:
    got = build("Create", body=b'{"id": "x", "inner": {"level": 2}, "counts": {"a": 1}}')
    assert got["inner"] == {"level": 2, "note": ""}
    assert got["counts"] == {"a": 1}


def test_an_empty_body_is_an_empty_message() -> None:
    assert build("Deactivate", path={"id": "u"}, routes=REAL) == {"id": "u", "reason": ""}


def test_a_body_field_takes_the_body_and_query_the_rest() -> None:
    got = build("Annotate", path={"id": "p"}, query=[("flag", "1")], body=b'{"note": "n"}')
    assert got["inner"]["note"] == "n"
    assert got["flag"] is True
    error = refused("Annotate", path={"id": "p"}, query=[("inner.note", "x")], body=b"{}")
    assert error.message == "inner.note: is carried by the request body"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{bad", "body: malformed JSON at line 1 column 2"),
        (b"[1, 2]", "body: expected a JSON object, got an array"),
        (b"\xff\xfe", "body: not UTF-8"),
        (b'{"nope": 1}', "nope: unknown field of Probe"),
        (b'{"small": "abc"}', "small: expected an integer, got 'abc'"),
        (b'{"small": true}', "small: expected an integer, got a boolean"),
        (b'{"small": 1.5}', "small: expected an integer, got a number"),
        (b'{"id": 5}', "id: expected a string, got a number"),
        (b'{"flag": "true"}', "flag: expected true or false, got a string"),
        (b'{"tags": "a"}', "tags: expected a JSON array, got a string"),
        (b'{"tags": [null]}', "tags[0]: null is not allowed in a list"),
        (b'{"items": [{"level": "x"}]}', "items[0].level: expected an integer"),
        (b'{"inner": {"nope": 1}}', "inner.nope: unknown field of Inner"),
        (b'{"inner": 3}', "inner: expected a JSON object, got a number"),
        (b'{"counts": {"a": "b"}}', "counts['a']: expected an integer"),
        (b'{"at": "yesterday"}', "at: expected an RFC 3339 time"),
        (b'{"color": "PINK"}', "color: expected one of"),
        (b'{"ratio": "fast"}', "ratio: expected a number"),
        (b'{"left": "a", "right": 2}', "left, right: give only one of them"),
        (b'{"id": "a", "ID": 1}', "ID: unknown field"),
        (b'{"id": "a", "id": "b"}', "id: given more than once in the body"),
        (b'{"old": 1, "bigs": ["99999999999999999999"]}', "old: unknown field"),
        (b'{"bigs": ["99999999999999999999"]}', "bigs[0]: 99999999999999999999 is outside"),
        (b"[" * 100_000, "body: nested too deeply"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(body: bytes, message: str) -> None:
    assert refused("Create", body=body).message.startswith(message)


def _fields(error: GatewayError) -> list[tuple[str, str]]:
    return [(v.field, v.description) for v in error.violations]


def test_every_bad_body_field_is_listed_with_the_contract_rules_of_the_rest() -> None:
    # Wrong JSON types stop the request in the gateway; the well-formed
    # fields are still checked against the contract's rules, so one answer
    # names every field to fix.
    error = refused(
        "Register", body=b'{"email": 1, "password": "short", "role": "admin"}', routes=REAL
    )
    assert _fields(error) == [
        ("email", "expected a string, got a number"),
        ("role", "unknown field of RegisterRequest"),
        ("password", "must be at least 8 characters"),
    ]
    assert error.message.startswith("email: expected a string, got a number; role: ")


def test_every_bad_nested_field_is_listed() -> None:
    error = refused("Create", body=b'{"small": "abc", "inner": {"nope": 1}, "flag": 2}')
    assert [field for field, _ in _fields(error)] == ["small", "inner.nope", "flag"]


def test_every_bad_query_parameter_is_listed_with_the_contract_rules_of_the_rest() -> None:
    error = refused(
        "ListEvents",
        query=[("limit", "abc"), ("since", "yesterday"), ("after_position", "x"), ("offset", "-1")],
        routes=REAL,
    )
    # Integers are read with the query, times after it, rules last: all in one answer.
    fields = [field for field, _ in _fields(error)]
    assert fields == ["limit", "after_position", "since", "offset"]
    assert _fields(error)[3][1].startswith("must be greater than or equal to 0")


def test_a_body_that_cannot_be_read_names_only_the_body() -> None:
    assert _fields(refused("Register", body=b"{bad", routes=REAL)) == [
        (
            "body",
            "malformed JSON at line 1 column 2: Expecting property name enclosed in double quotes",
        )
    ]


def test_proto_and_json_names_of_one_field_conflict() -> None:
    error = refused(
        "ChangePassword",
        path={"id": "u"},
        body=b'{"old_password": "a", "oldPassword": "b"}',
        routes=REAL,
    )
    assert error.message.startswith("old_password: given twice")


def test_query_parameters_are_refused_when_the_body_carries_everything() -> None:
    error = refused("Login", query=[("email", "a@b.c")], body=b"{}", routes=REAL)
    assert error.message.startswith("email: not accepted as a query parameter")


def test_a_body_on_a_route_without_one_is_refused_unless_empty() -> None:
    assert build("CreateSnapshot", path={"aggregate_id": "u"}, body=b" {} ", routes=REAL)
    error = refused("CreateSnapshot", path={"aggregate_id": "u"}, body=b'{"x": 1}', routes=REAL)
    assert error.message.startswith("body: this route takes no request body")


def test_parse_body_of_whitespace_is_none() -> None:
    assert parse_body(b"  \n") is None


# --- responses -----------------------------------------------------------------------


def _reply(name: str, **fields: Any) -> Message:
    return ROUTES[name].rpc.response_class(**fields)


def test_responses_print_every_field_with_proto_names() -> None:
    rendered = render(ROUTES["Get"], _reply("Get", id="x"))
    assert rendered["id"] == "x"
    assert rendered["small"] == 0
    assert rendered["flag"] is False
    assert rendered["tags"] == []
    assert rendered["color"] == "unspecified"
    assert "at" not in rendered  # an unset message has presence: absent, not null


def test_int64_is_a_number_when_it_fits_a_double_else_a_string() -> None:
    rendered = render(ROUTES["Get"], _reply("Get", big=2**53 - 1, bigs=[1, -(2**60)]))
    assert rendered["big"] == 2**53 - 1
    assert rendered["bigs"] == [1, str(-(2**60))]


def test_response_body_answers_one_field() -> None:
    reply = _reply("Annotate")
    reply.inner.note = "only this"  # type: ignore[attr-defined]
    assert render(ROUTES["Annotate"], reply) == {"note": "only this", "level": 0}


def test_real_events_render_numbers_as_numbers() -> None:
    route = REAL["GetAggregateEvents"]
    reply = route.rpc.response_class()
    event = reply.events.add()  # type: ignore[attr-defined]
    event.position = 3
    event.version = 1
    event.event_type = "user.created"
    event.timestamp.FromJsonString("2025-10-25T19:57:00Z")
    event.payload.update({"email": "a@b.cc"})
    reply.count = 1  # type: ignore[attr-defined]
    reply.aggregate_id = "u"  # type: ignore[attr-defined]
    decoded = json.loads(dumps(render(route, reply)))
    assert decoded["count"] == 1
    assert decoded["events"][0]["position"] == 3
    assert decoded["events"][0]["version"] == 1
    assert decoded["events"][0]["timestamp"] == "2025-10-25T19:57:00Z"
    assert decoded["events"][0]["payload"] == {"email": "a@b.cc"}


def test_body_enums_accept_words_and_names() -> None:
    assert build("Create", body=b'{"color": "blue"}')["color"] == "blue"
    assert build("Create", body=b'{"color": "COLOR_BLUE"}')["color"] == "blue"
    error = refused("Create", body=b'{"color": "BLUE"}')
    assert error.message == "color: expected one of unspecified, red, blue; got 'BLUE'"


def test_empty_count_shows_zero() -> None:
    route = REAL["CountEvents"]
    assert render(route, route.rpc.response_class()) == {"count": 0}
