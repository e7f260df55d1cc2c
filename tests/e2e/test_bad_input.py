"""Malformed input on every annotated route is a 4xx JSON error naming the problem.

The cases are generated from the gateway's own route table (the
``google.api.http`` annotations in the descriptor set), so a route added to
the contract is covered without editing this file: for each route, a bad
UUID in every path variable; for body routes malformed JSON, a non-object,
an unknown field and a wrong type for every field; for query routes an
unknown parameter, text that does not parse for every parameter, and
out-of-range numbers. Every request carries an admin token, so that it is
the input, not the caller, that is refused. Never a 5xx.

Each route is tried under /v1 and unprefixed. On the seed's routes an
unknown query parameter (or one on a body route) is ignored as the seed
ignores it (test_seed_client.py checks that), so those two cases are left
out there; every other malformed input is refused the same way.
"""

from __future__ import annotations

import http.client as httplib
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from gateway.fields import is_leaf_message, message_of, query_fields
from gateway.routes import HttpRoute, load_routes
from gateway.seed_format import SEED_ROUTES
from service_kit import descriptors
from tests.e2e.http_client import HttpClient, HttpResponse

pytestmark = pytest.mark.e2e

ROUTES = load_routes(descriptors.descriptor_set(), descriptors.pool())
BAD_UUID = "not-a-uuid"
# Valid values for parameters a route requires, so that the one under test
# is the only problem in the request.
REQUIRED_QUERY = {
    ("GET", "/events/replay"): {"since": "2020-01-01T00:00:00Z"},
    ("GET", "/replay/user/{aggregate_id}/state-at"): {"timestamp": "2030-01-01T00:00:00Z"},
    ("GET", "/replay/user/{aggregate_id}/compare"): {
        "time1": "2020-01-01T00:00:00Z",
        "time2": "2030-01-01T00:00:00Z",
    },
    ("GET", "/replay/users/state-at"): {"timestamp": "2030-01-01T00:00:00Z"},
}
PAGE_LIMITS = {"limit", "page_size"}
INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}


@dataclass(frozen=True, slots=True)
class Case:
    """One malformed request and the name its error must start with."""

    route: HttpRoute
    label: str
    names: str  # the error starts with "<names>:"
    path_values: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expect_in_error: str = ""
    prefix: str = "/v1"

    @property
    def id(self) -> str:
        return f"{self.route.verb} {self.prefix}{self.route.template.text} [{self.label}]"


def _wrong_json_value(field: FieldDescriptor) -> Any:
    """A JSON value of the wrong kind for a body field."""
    if field.type == FieldDescriptor.TYPE_STRING:
        return 12345
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "maybe"
    return {"not": "a scalar"}


def _unparsable_text(field: FieldDescriptor) -> str:
    """Query text that does not parse as (or is not valid for) the field."""
    if is_leaf_message(field) and message_of(field).full_name == "google.protobuf.Timestamp":
        return "yesterday at noon"
    if field.type in INTEGER_TYPES:
        return "abc"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "maybe"
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "NOT_A_VALUE"
    # Every string parameter here is an id, an event type or a page token.
    return "not valid!"


def _cases(route: HttpRoute) -> Iterator[Case]:
    for name in route.path_fields:
        yield Case(route, f"bad {name}", name, path_values=((name, BAD_UUID),))
    if route.body == "*":
        yield Case(route, "malformed JSON", "body", body=b'{"email": ', expect_in_error="JSON")
        yield Case(route, "not an object", "body", body=b"[1, 2]", expect_in_error="object")
        yield Case(route, "unknown field", "no_such_field", body=b'{"no_such_field": 1}')
        yield Case(route, "query on a body route", "email", query=(("email", "x"),))
        for field in route.rpc.input.fields:
            if field.name in route.path_fields:
                continue
            body = json.dumps({field.name: _wrong_json_value(field)}).encode()
            yield Case(route, f"wrong type {field.name}", field.name, body=body)
        return
    yield Case(route, "unknown parameter", "no_such_param", query=(("no_such_param", "1"),))
    yield Case(route, "a body on a bodyless route", "body", body=b'{"limit": 5}')
    for name, field in query_fields(route.rpc.input):
        if name.split(".")[0] in route.path_fields:
            continue
        yield Case(route, f"unparsable {name}", name, query=((name, _unparsable_text(field)),))
        if field.type in INTEGER_TYPES:
            yield Case(route, f"negative {name}", name, query=((name, "-1"),))
        if name in PAGE_LIMITS:
            yield Case(route, f"{name}=1001", name, query=((name, "1001"),), expect_in_error="1000")
        if field.type in INTEGER_TYPES:
            too_big = str(2**63)
            yield Case(route, f"{name} overflows", name, query=((name, too_big),))


# Ignored, not refused, on the seed's routes (as the seed's handlers ignore them).
SEED_LENIENT = {"unknown parameter", "query on a body route"}


def _unprefixed(case: Case) -> Case | None:
    is_seed = (case.route.verb, case.route.template.text) in SEED_ROUTES
    if is_seed and case.label in SEED_LENIENT:
        return None
    return replace(case, prefix="")


V1_CASES = [case for route in ROUTES for case in _cases(route)]
CASES = V1_CASES + [c for c in map(_unprefixed, V1_CASES) if c is not None]


@pytest.fixture(scope="module")
def client(http: HttpClient) -> HttpClient:
    # A short timeout: a streaming route that wrongly accepted its input
    # would otherwise hold the test until the stream ended.
    return HttpClient(http.port, http.log, timeout=10)


def _send(client: HttpClient, case: Case, admin_id: str, token: str) -> HttpResponse:
    values = dict(case.path_values)
    path = case.prefix + case.route.template.text
    for name in case.route.path_fields:
        path = path.replace("{" + name + "}", values.get(name, admin_id))
    query: dict[str, str] = {}
    tested = {name for name, _ in case.query}
    siblings = {f.name for name in tested for f in _oneof_siblings(case.route, name)}
    for name, value in REQUIRED_QUERY.get((case.route.verb, case.route.template.text), {}).items():
        if name not in tested and name not in siblings and case.route.body != "*":
            query[name] = value
    query.update(dict(case.query))
    if query:
        path += "?" + urllib.parse.urlencode(query)
    return client.request(case.route.verb, path, data=case.body, token=token)


def _oneof_siblings(route: HttpRoute, name: str) -> list[FieldDescriptor]:
    field = route.rpc.input.fields_by_name.get(name)
    if field is None or field.containing_oneof is None:
        return []
    return list(field.containing_oneof.fields)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_a_4xx_naming_the_problem(
    client: HttpClient, admin_id: str, admin_token: str, case: Case
) -> None:
    answer = _send(client, case, admin_id, admin_token)
    assert 400 <= answer.status < 500, answer.describe()
    assert answer.headers.get("content-type") == "application/json", answer.describe()
    assert answer.status == 400, answer.describe()
    assert answer.code == "INVALID_ARGUMENT", answer.describe()
    assert answer.error.startswith(f"{case.names}:"), answer.describe()
    assert case.expect_in_error in answer.error, answer.describe()


def test_the_route_table_is_what_openapi_documents(http: HttpClient) -> None:
    document = http.root.get("/openapi.json")
    assert document.status == 200, document.describe()
    documented = {
        (verb.upper(), path)
        for path, operations in document.json()["paths"].items()
        for verb in operations
    }
    served = {(r.verb, r.template.text) for r in ROUTES}
    served |= {(r.verb, "/v1" + r.template.text) for r in ROUTES}
    local = {("GET", p) for p in ("/health", "/health/ready", "/health/live", "/openapi.json")}
    assert served | local == documented
    assert len(V1_CASES) > 100


def test_an_oversized_body_is_413(http: HttpClient) -> None:
    big = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'@example.com", "password": "x"}'
    answer = http.post("/register", data=big)
    assert answer.status == 413, answer.describe()
    assert answer.code == "RESOURCE_EXHAUSTED"
    assert answer.error.startswith("body:")


def test_an_oversized_chunked_body_is_413(http: HttpClient) -> None:
    # No Content-Length to go by: the gateway counts while it reads.
    chunk = b"a" * 65536
    conn = httplib.HTTPConnection("127.0.0.1", http.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/register",
            body=iter([b'{"email": "', *([chunk] * 32), b'"}']),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    http.log.add(f"HTTP POST /register (chunked) -> {response.status}", body)
    assert response.status == 413, body


def test_unknown_route_is_a_404_json(http: HttpClient) -> None:
    for path in ("/nope", "/users/a/b/c/d", "/replay/user", "/"):
        answer = http.get(path)
        assert answer.status == 404, answer.describe()
        assert answer.code == "NOT_FOUND"
        assert answer.error.startswith("no route for")


def test_wrong_method_is_a_405_json_with_allow(http: HttpClient) -> None:
    answer = http.request("DELETE", "/register")
    assert answer.status == 405, answer.describe()
    assert answer.headers["allow"] == "POST"
    assert answer.code == "UNIMPLEMENTED"


def test_a_bad_min_position_header_names_the_header(http: HttpClient, admin_token: str) -> None:
    answer = http.get("/users", token=admin_token, headers={"X-Min-Position": "soon"})
    assert answer.status == 400, answer.describe()
    assert answer.error.startswith("X-Min-Position:")


def test_a_duplicated_body_key_is_refused(http: HttpClient) -> None:
    answer = http.post(
        "/register", data=b'{"email": "a@example.com", "email": "b@example.com", "password": "x"}'
    )
    assert answer.status == 400, answer.describe()
    assert answer.error.startswith("email:")


def test_a_body_that_is_not_utf8_is_refused(http: HttpClient) -> None:
    answer = http.post("/register", data=b'{"email": "\xff\xfe"}')
    assert answer.status == 400, answer.describe()
    assert answer.error.startswith("body:")
