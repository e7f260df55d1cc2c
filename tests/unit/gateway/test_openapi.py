"""The OpenAPI document generated from the descriptors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.comments import symbol_comments
from gateway.openapi import build_document
from gateway.routes import load_routes
from service_kit import descriptors

from . import synthetic

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    fds = descriptors.descriptor_set()
    return build_document(load_routes(fds, descriptors.pool()), symbol_comments(fds))


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
        ("/health", "get"),
        ("/health/ready", "get"),
        ("/health/live", "get"),
        ("/openapi.json", "get"),
    ]:
        assert verb in paths[path], (path, verb)


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in _refs(doc):
        section, kind, name = ref.removeprefix("#/").split("/", 2)
        assert section == "components"
        assert name in doc["components"][kind], ref


def test_operations_carry_comments_and_status(doc: dict[str, Any]) -> None:
    register = doc["paths"]["/register"]["post"]
    assert register["operationId"] == "CommandService_Register"
    assert register["summary"] == "Registers a new user."
    assert "/cqrs.command.v1.CommandService/Register" in register["description"]
    assert "201" in register["responses"]
    body = register["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/cqrs.command.v1.RegisterRequest"}
    assert "201" in doc["paths"]["/snapshots/{aggregate_id}"]["post"]["responses"]
    assert "200" in doc["paths"]["/login"]["post"]["responses"]


def test_parameters_come_from_path_and_query_fields(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/replay/user/{aggregate_id}/state-at"]["get"]
    params = {p["name"]: p for p in operation["parameters"] if "name" in p}
    assert params["aggregate_id"]["in"] == "path"
    assert params["aggregate_id"]["required"] is True
    assert params["timestamp"]["in"] == "query"
    assert params["timestamp"]["schema"]["format"] == "date-time"
    assert params["version"]["schema"] == {"type": "integer", "format": "int32"}
    assert "At most one of timestamp, version may be given." in params["version"]["description"]
    events = {p["name"]: p for p in doc["paths"]["/events"]["get"]["parameters"] if "name" in p}
    assert set(events) == {
        "event_type",
        "aggregate_id",
        "since",
        "until",
        "after_position",
        "limit",
    }
    assert events["limit"]["description"].startswith("Most events to return")
    users = {p["name"]: p for p in doc["paths"]["/users"]["get"]["parameters"] if "name" in p}
    assert users["status"]["schema"] == {"$ref": "#/components/schemas/cqrs.common.v1.UserStatus"}
    assert "requestBody" not in doc["paths"]["/users"]["get"]


def test_body_routes_take_no_query_parameters(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/users/{id}/password"]["put"]
    names = [p["name"] for p in operation["parameters"] if "name" in p]
    assert names == ["id"]


def test_schemas_describe_fields_from_comments(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    event = schemas["cqrs.eventstore.v1.Event"]
    assert event["properties"]["version"]["type"] == "integer"
    assert event["properties"]["position"]["type"] == ["integer", "string"]
    assert event["properties"]["timestamp"]["format"] == "date-time"
    assert event["properties"]["payload"]["type"] == "object"
    assert event["properties"]["event_type"]["description"].startswith("Event type")
    assert event["additionalProperties"] is False
    status = schemas["cqrs.common.v1.UserStatus"]
    assert status["enum"] == [
        "USER_STATUS_UNSPECIFIED",
        "USER_STATUS_ACTIVE",
        "USER_STATUS_DEACTIVATED",
    ]
    assert "USER_STATUS_ACTIVE`: The account can log in" in status["description"]
    subscribe = schemas["cqrs.eventstore.v1.SubscribeResponse"]
    assert "At most one of event, checkpoint" in subscribe["description"]
    assert schemas["Error"]["required"] == ["error", "code"]


def test_streams_are_ndjson(doc: dict[str, Any]) -> None:
    response = doc["paths"]["/events/subscribe"]["get"]["responses"]["200"]
    assert list(response["content"]) == ["application/x-ndjson"]
    rebuild = doc["paths"]["/admin/rebuild-read-model"]["post"]["responses"]["200"]
    assert list(rebuild["content"]) == ["application/x-ndjson"]


def test_probe_contract_maps_repeated_maps_and_custom_verbs() -> None:
    routes = load_routes(synthetic.file_set(), synthetic.pool())
    doc = build_document(routes, {})
    probe = doc["components"]["schemas"]["test.gateway.v1.Probe"]["properties"]
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
        "$ref": "#/components/schemas/test.gateway.v1.Inner"
    }
    assert "inner.note" not in {p.get("name") for p in annotate["parameters"]}
