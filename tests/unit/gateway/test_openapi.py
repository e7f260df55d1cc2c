"""The OpenAPI document generated from the descriptors."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway.comments import symbol_comments
from gateway.openapi import ServerBounds, build_document
from gateway.profiles import served_routes
from gateway.routes import load_routes
from gateway.seed_format import SEED_ROUTES
from service_kit import descriptors
from service_kit.access import method_rules

from . import synthetic

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    fds = descriptors.descriptor_set()
    served = served_routes(load_routes(fds, descriptors.pool()))
    return build_document(served, symbol_comments(fds))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_it_is_openapi_31_with_every_route(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    for path, verb in [
        ("/register", "post"),
        ("/users/{id}/password", "put"),
        ("/users/{id}", "get"),
        ("/users", "get"),
        ("/login", "post"),
        ("/events", "get"),
        ("/events/count", "get"),
        ("/events/aggregate/{aggregate_id}", "get"),
        ("/replay/user/{aggregate_id}/state-at", "get"),
        ("/replay/users/state-at", "get"),
        ("/snapshots/{aggregate_id}", "post"),
        ("/events/subscribe", "get"),
    ]:
        assert verb in paths[path], (path, verb)
        assert verb in paths["/v1" + path], (path, verb)
    for local in ("/health", "/health/ready", "/health/live", "/openapi.json"):
        assert "get" in paths[local], local


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in _refs(doc):
        section, kind, name = ref.removeprefix("#/").split("/", 2)
        assert section == "components"
        assert name in doc["components"][kind], ref


def test_operations_carry_comments_and_status(doc: dict[str, Any]) -> None:
    register = doc["paths"]["/v1/register"]["post"]
    assert register["operationId"] == "CommandService_Register"
    assert register["tags"] == ["CommandService"]
    assert register["summary"] == "Registers a new user."
    assert "/cqrs.command.v1.CommandService/Register" in register["description"]
    assert "201" in register["responses"]
    body = register["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RegisterRequest"}
    assert "201" in doc["paths"]["/v1/snapshots/{aggregate_id}"]["post"]["responses"]
    assert "201" in doc["paths"]["/snapshots/{aggregate_id}"]["post"]["responses"]
    assert "200" in doc["paths"]["/v1/login"]["post"]["responses"]


def test_parameters_come_from_path_and_query_fields(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/replay/user/{aggregate_id}/state-at"]["get"]
    params = {p["name"]: p for p in operation["parameters"] if "name" in p}
    assert params["aggregate_id"]["in"] == "path"
    assert params["aggregate_id"]["required"] is True
    assert params["timestamp"]["in"] == "query"
    assert params["timestamp"]["schema"]["format"] == "date-time"
    assert params["version"]["schema"] == {"type": "integer", "format": "int32", "minimum": 1}
    assert "At most one of timestamp, version may be given." in params["version"]["description"]
    events = {p["name"]: p for p in doc["paths"]["/v1/events"]["get"]["parameters"] if "name" in p}
    assert set(events) == {
        "event_type",
        "aggregate_id",
        "since",
        "until",
        "after_position",
        "offset",
        "limit",
    }
    assert events["limit"]["description"].startswith("Most events to return")
    users = {p["name"]: p for p in doc["paths"]["/v1/users"]["get"]["parameters"] if "name" in p}
    assert users["status"]["schema"] == {"$ref": "#/components/schemas/UserStatus"}
    assert "requestBody" not in doc["paths"]["/v1/users"]["get"]


def test_body_routes_take_no_query_parameters(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/users/{id}/password"]["put"]
    names = [p["name"] for p in operation["parameters"] if "name" in p]
    assert names == ["id"]


def test_schemas_describe_fields_from_comments(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    event = schemas["Event"]
    assert event["properties"]["version"]["type"] == "integer"
    assert event["properties"]["position"]["type"] == ["integer", "string"]
    assert event["properties"]["timestamp"]["format"] == "date-time"
    assert event["properties"]["payload"]["type"] == "object"
    assert event["properties"]["event_type"]["description"].startswith("Event type")
    assert event["additionalProperties"] is False
    status = schemas["UserStatus"]
    assert status["enum"] == ["unspecified", "active", "deactivated", "erased"]
    assert "`active`: The account can log in" in status["description"]
    subscribe = schemas["SubscribeResponse"]
    assert "At most one of event, checkpoint" in subscribe["description"]
    assert schemas["Error"]["required"] == ["error", "code"]


def test_streams_are_ndjson(doc: dict[str, Any]) -> None:
    response = doc["paths"]["/events/subscribe"]["get"]["responses"]["200"]
    assert list(response["content"]) == ["application/x-ndjson"]
    rebuild = doc["paths"]["/admin/rebuild-read-model"]["post"]["responses"]["200"]
    assert list(rebuild["content"]) == ["application/x-ndjson"]


def test_probe_contract_maps_repeated_maps_and_custom_verbs() -> None:
    routes = load_routes(synthetic.file_set(), synthetic.pool())
    doc = build_document(served_routes(routes, {}), {})
    probe = doc["components"]["schemas"]["Probe"]["properties"]
    assert probe["tags"] == {"type": "array", "items": {"type": "string"}}
    assert probe["counts"] == {
        "type": "object",
        "additionalProperties": {"type": "integer", "format": "int32"},
    }
    assert probe["maybe"] == {"type": ["integer", "null"]}
    assert probe["blob"]["contentEncoding"] == "base64"
    assert "/probes:watch" in doc["paths"]
    listed = {p["name"] for p in doc["paths"]["/probes"]["get"]["parameters"] if "name" in p}
    assert {"inner.note", "inner.level", "tags"} <= listed
    assert "counts" not in listed and "items" not in listed
    annotate = doc["paths"]["/probes/{id}/inner"]["put"]
    assert annotate["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Inner"
    }
    assert "inner.note" not in {p.get("name") for p in annotate["parameters"]}


def test_one_document_describes_both_profiles(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    # Every seed route, unprefixed, answers the seed's schema.
    for verb, path in SEED_ROUTES:
        operation = paths[path][verb.lower()]
        assert operation["tags"] == ["Seed routes"], path
        assert operation["operationId"].endswith("_Seed"), path
        success = next(r for code, r in operation["responses"].items() if code[0] == "2")
        schema = success["content"]["application/json"]["schema"]
        assert schema == SEED_ROUTES[(verb, path)].schema, path
        assert "X-Ignored-Query-Parameters" in success["headers"]
    # Our shape under /v1, and at unprefixed paths the seed does not have.
    mine = paths["/v1/users/{id}"]["get"]
    theirs_too = paths["/users/{id}"]["get"]
    assert mine["operationId"] == "QueryService_GetUser"
    assert theirs_too["operationId"] == "QueryService_GetUser_Unprefixed"
    assert theirs_too["tags"] == ["Unprefixed (our shape)"]
    assert theirs_too["responses"]["200"] == mine["responses"]["200"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_seed_routes_document_the_seeds_query_names_and_defaults(doc: dict[str, Any]) -> None:
    events = doc["paths"]["/events"]["get"]
    names = [p["name"] for p in events["parameters"] if "name" in p]
    assert {"start_time", "end_time", "offset", "limit", "event_type", "aggregate_id"} <= set(names)
    by_name = {p["name"]: p for p in events["parameters"] if "name" in p}
    assert by_name["start_time"]["schema"] == by_name["since"]["schema"]
    assert by_name["start_time"]["description"] == "The seed's name for since."
    users = {p["name"]: p for p in doc["paths"]["/users"]["get"]["parameters"] if "name" in p}
    assert users["page_size"]["description"] == "Default here: 1000."
    aggregate = doc["paths"]["/events/aggregate/{aggregate_id}"]["get"]
    assert "from_version" in {p.get("name") for p in aggregate["parameters"]}
    users_schema = doc["paths"]["/users"]["get"]["responses"]["200"]["content"]
    assert users_schema["application/json"]["schema"]["type"] == "array"
    seed_user = doc["components"]["schemas"]["SeedUser"]
    assert seed_user["required"] == ["ID", "Email", "Status", "CreatedAt", "UpdatedAt"]
    seed_event = doc["components"]["schemas"]["SeedEvent"]
    assert seed_event["properties"]["payload"]["type"] == "string"
    assert doc["components"]["schemas"]["Health"]["properties"]["total_events"]


def test_it_validates_as_openapi_31(doc: dict[str, Any]) -> None:
    validate(doc)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, verb, operation)
        for path, item in doc["paths"].items()
        for verb, operation in item.items()
    ]


def test_security_is_per_operation_from_the_access_rules(doc: dict[str, Any]) -> None:
    rules = {r.path: r.access for r in method_rules()}
    public = set()
    for path, verb, operation in _operations(doc):
        grpc_path = next(
            (
                line.split("`")[1]
                for line in operation.get("description", "").splitlines()
                if line.startswith("gRPC: `")
            ),
            None,
        )
        if grpc_path is None:  # the gateway's own routes (health, this document)
            assert operation["security"] == [], path
            continue
        expected: list[Any] = [] if rules[grpc_path].kind == "public" else [{"bearerAuth": []}]
        assert operation["security"] == expected, (verb, path)
        if not expected:
            public.add(path)
            assert "401" not in operation["responses"], path
        else:
            assert {"401", "403"} <= set(operation["responses"]), path
    assert {
        "/v1/register",
        "/v1/login",
        "/v1/token/refresh",
        "/v1/.well-known/jwks.json",
        "/v1/password-reset",
        "/v1/password-reset/confirm",
    } <= public
    assert "/v1/users/{id}/email" not in public
    assert doc["security"] == [{"bearerAuth": []}]


def test_required_lists_and_bounds_come_from_the_annotations(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    register = schemas["RegisterRequest"]
    assert register["required"] == ["email", "password"]
    assert register["properties"]["password"] | {"description": ""} == {
        "type": "string",
        "minLength": 8,
        "maxLength": 128,
        "description": "",
    }
    assert register["properties"]["email"]["format"] == "email"
    body = schemas["ChangeEmailRequestBody"]
    assert body["required"] == ["new_email"] and "id" not in body["properties"]
    change = doc["paths"]["/v1/users/{id}/email"]["put"]
    assert change["requestBody"]["required"] is True
    assert change["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChangeEmailRequestBody"
    }
    id_param = change["parameters"][0]
    assert id_param["schema"]["format"] == "uuid" and "pattern" in id_param["schema"]
    events = {p["name"]: p for p in doc["paths"]["/v1/events"]["get"]["parameters"] if "name" in p}
    assert events["limit"]["schema"]["maximum"] == 1000
    assert events["limit"]["schema"]["minimum"] == 0
    states = doc["paths"]["/v1/replay/users/state-at"]["get"]["parameters"]
    assert next(p for p in states if p.get("name") == "timestamp")["required"] is True
    # Responses list every field the gateway always prints.
    assert set(schemas["RegisterResponse"]["required"]) == {"id", "message", "version", "position"}
    assert "last_login_at" not in schemas["User"]["required"]


def test_errors_are_documented_with_their_schema(doc: dict[str, Any]) -> None:
    responses = doc["components"]["responses"]
    for name in (
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "Conflict",
        "TooManyRequests",
        "Unavailable",
    ):
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, name
    assert "Retry-After" in responses["TooManyRequests"]["headers"]
    assert "Retry-After" in responses["Unavailable"]["headers"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["violations"]["items"] == {
        "$ref": "#/components/schemas/FieldViolation"
    }
    register = doc["paths"]["/v1/register"]["post"]["responses"]
    assert register["400"] == {"$ref": "#/components/responses/BadRequest"}
    assert register["409"] == {"$ref": "#/components/responses/Conflict"}
    assert register["429"] == {"$ref": "#/components/responses/TooManyRequests"}
    assert "default" in register


def test_schema_names_are_readable(doc: dict[str, Any]) -> None:
    names = set(doc["components"]["schemas"])
    assert {"RegisterRequest", "User", "UserState", "Event", "UserStatus", "Error"} <= names
    assert not [n for n in names if "." in n], names


def test_streams_say_what_each_line_is(doc: dict[str, Any]) -> None:
    response = doc["paths"]["/v1/events/subscribe"]["get"]["responses"]["200"]
    assert response["content"]["application/x-ndjson"]["schema"] == {
        "$ref": "#/components/schemas/SubscribeResponse"
    }
    assert "each line is one message" in response["description"]
    assert "last line with the Error schema" in response["description"]


def test_every_bound_the_server_enforces_is_stated() -> None:
    fds = descriptors.descriptor_set()
    served = served_routes(load_routes(fds, descriptors.pool()))
    # body bytes, read timeout, head bytes, connections, per client, in flight per client
    bounds = ServerBounds(4321, 7.5, 999, 1234, 56, 17)
    doc = build_document(served, symbol_comments(fds), bounds=bounds)
    validate(doc)
    info = doc["info"]["description"]
    for figure in ("4321 bytes", "7.5 s", "999 bytes", "1234 open", "56", "17 requests"):
        assert figure in info, figure
    assert "QUERY_WAIT_TIMEOUT_MS" in info and "1 s for an anonymous" in info
    responses = doc["components"]["responses"]
    assert "17 requests in flight" in responses["TooManyRequests"]["description"]
    assert "4321 bytes" in responses["PayloadTooLarge"]["description"]
    assert "7.5 s" in responses["RequestTimeout"]["description"]
    assert "999 bytes" in responses["RequestHeaderFieldsTooLarge"]["description"]
    assert "56 from one client" in responses["Unavailable"]["description"]
    assert "QUERY_WAIT_TIMEOUT_MS" in doc["components"]["parameters"]["MinPosition"]["description"]
    users = doc["paths"]["/v1/users"]["get"]
    wait = next(p for p in users["parameters"] if p.get("name") == "min_position")
    assert "QUERY_WAIT_TIMEOUT_MS" in wait["description"]
    for status in ("408", "429", "431"):
        assert status in users["responses"], status
