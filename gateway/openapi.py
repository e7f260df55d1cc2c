"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the routes.

One document describes every served route (:mod:`gateway.profiles`): our
shape under ``/v1`` and at the unprefixed paths the seed does not use,
and the seed's shape at the seed's routes. Everything about our shape
comes from the descriptors: paths and verbs from the http annotations,
path and query parameters from the request fields they bind, request
bodies and response schemas from the messages, descriptions from the
contract's comments. It describes the JSON exactly as
:mod:`gateway.transcode` writes it (proto field names, enums as words,
Timestamps as RFC 3339 strings, 64-bit integers as numbers or, beyond
2**53, strings). The seed's answers are described by the schemas of
:data:`gateway.seed_format.SCHEMAS`, one per seed route in its table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway import enum_words
from gateway.comments import summary
from gateway.fields import (
    INT64_TYPES,
    is_leaf_message,
    is_map,
    is_repeated,
    is_walkable_message,
    message_of,
    query_fields,
    resolve_path,
)
from gateway.profiles import ServedRoute
from gateway.routes import HttpRoute
from gateway.seed_format import IGNORED_HEADER, SCHEMAS, SeedRoute

OPENAPI_VERSION = "3.1.0"
NDJSON = "application/x-ndjson"

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
}
_INT64: dict[str, Any] = {"type": ["integer", "string"], "format": "int64"}

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 time, e.g. 2025-10-25T19:58:00Z",
    },
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "contentEncoding": "base64"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"]},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"]},
    "google.protobuf.Int64Value": {"type": ["integer", "string", "null"]},
    "google.protobuf.UInt64Value": {"type": ["integer", "string", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
}

_HEADERS: dict[str, dict[str, Any]] = {
    "CorrelationId": {
        "name": "X-Correlation-Id",
        "in": "header",
        "description": "Correlation id recorded with the events a command causes; "
        "generated when absent and echoed in the response.",
        "schema": {"type": "string", "maxLength": 128},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "Makes a retried command take effect once.",
        "schema": {"type": "string", "maxLength": 256},
    },
    "MinPosition": {
        "name": "X-Min-Position",
        "in": "header",
        "description": "Wait (bounded) until the read model has applied this global position.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def _health_operation(operation_id: str, what: str) -> dict[str, Any]:
    health = {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["Gateway"],
            "summary": what,
            "responses": {
                "200": {
                    "description": "Every backend is ready (ok, or degraded and saying why).",
                    "content": health,
                },
                "503": {
                    "description": "A backend cannot be reached or is not ready (a required "
                    "dependency of it is down), or the event count failed.",
                    "content": health,
                },
            },
        }
    }


_LOCAL_PATHS: dict[str, Any] = {
    "/health": _health_operation(
        "Gateway_Health",
        "Readiness of every backend, dependency by dependency, and the number of stored events.",
    ),
    "/health/ready": _health_operation("Gateway_Ready", "The same as /health (readiness)."),
    "/health/live": {
        "get": {
            "operationId": "Gateway_Live",
            "tags": ["Gateway"],
            "summary": "Liveness: the gateway serves HTTP (no backend is asked).",
            "responses": {"200": {"description": '{"status": "ok"}'}},
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "Gateway_OpenApi",
            "tags": ["Gateway"],
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1 document."}},
        }
    },
}

_HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "total_events", "event_count", "services", "backends"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "total_events": {"type": ["integer", "null"], "description": "The store's event count."},
        "event_count": {"type": ["integer", "null"], "description": "The same number."},
        "services": {
            "type": "object",
            "description": "Health status of each backend, e.g. SERVING, NOT_SERVING, UNAVAILABLE.",
            "additionalProperties": {"type": "string"},
        },
        "backends": {
            "type": "object",
            "description": "Each backend's readiness: status, ready, role, reason, and checks "
            "(per dependency: status, required, reason, and figures such as position, head, "
            "behind, stalled_seconds).",
            "additionalProperties": {"type": "object"},
        },
    },
}

# How each profile's operations are named and grouped.
_PROFILE_TAGS = {"seed": "Seed routes", "unprefixed": "Unprefixed (our shape)"}
_PROFILE_SUFFIX = {"v1": "", "seed": "_Seed", "unprefixed": "_Unprefixed"}


def build_document(
    routes: Sequence[ServedRoute],
    comments: Mapping[str, str],
    *,
    title: str = "cqrs-users REST gateway",
    version: str = "1",
) -> dict[str, Any]:
    """The OpenAPI document for these routes (plus /health and /openapi.json)."""
    builder = _Builder(comments)
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for served in routes:
        route = served.route
        operation_id = f"{route.rpc.service.rsplit('.', 1)[-1]}_{route.rpc.name}"
        operation_id += _PROFILE_SUFFIX[served.profile]
        seen[operation_id] = seen.get(operation_id, 0) + 1
        if seen[operation_id] > 1:  # additional bindings of one RPC
            operation_id += f"_{seen[operation_id]}"
        path = paths.setdefault(served.template.openapi_path(), {})
        operation = builder.operation(route, operation_id)
        if served.profile in _PROFILE_TAGS:
            operation["tags"] = [_PROFILE_TAGS[served.profile]]
        if served.seed is not None:
            _seed_operation(operation, served.seed)
        path[route.verb.lower()] = operation
    paths.update(_LOCAL_PATHS)
    schemas = dict(sorted(builder.schemas.items()))
    schemas.update(SCHEMAS)
    schemas["Error"] = _error_schema()
    schemas["Health"] = _HEALTH_SCHEMA
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "HTTP/JSON routes transcoded to the services' gRPC methods "
            "from their google.api.http annotations. Every route answers under /v1 in "
            "our shape (proto field names, enums as lower-case words, unknown query "
            "parameters refused). The seed's documented routes, unprefixed, answer in the "
            "seed's wire format (tag 'Seed routes'; unknown query parameters ignored and "
            f"named in the {IGNORED_HEADER} header); other unprefixed paths answer in our "
            'shape. Errors answer {"error": "<message>", "code": "<gRPC status name>"}.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "parameters": _HEADERS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        # Which methods need a token is decided by each service; the token is optional here.
        "security": [{}, {"bearerAuth": []}],
    }


class _Builder:
    def __init__(self, comments: Mapping[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, dict[str, Any]] = {}

    def operation(self, route: HttpRoute, operation_id: str) -> dict[str, Any]:
        rpc = route.rpc
        comment = self.comments.get(rpc.full_name, "")
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [rpc.service.rsplit(".", 1)[-1]],
            "summary": summary(comment) if comment else rpc.name,
            "description": f"{comment}\n\ngRPC: `{rpc.path}`".strip(),
            "parameters": [
                *self.path_parameters(route),
                *self.query_parameters(route),
                *({"$ref": f"#/components/parameters/{name}"} for name in _HEADERS),
            ],
        }
        if route.body:
            operation["requestBody"] = self.request_body(route)
        operation["responses"] = {
            str(route.success_status): self.success(route),
            "4XX": _error_response("The request was refused (see code)."),
            "5XX": _error_response("A backend failed or is unavailable."),
        }
        return operation

    def path_parameters(self, route: HttpRoute) -> list[dict[str, Any]]:
        out = []
        for field_path in route.path_fields:
            leaf = resolve_path(route.rpc.input, field_path)[-1]
            out.append(
                {
                    "name": field_path,
                    "in": "path",
                    "required": True,
                    "description": self.comments.get(leaf.full_name, ""),
                    "schema": self.field_schema(leaf, item=True),
                }
            )
        return out

    def query_parameters(self, route: HttpRoute) -> list[dict[str, Any]]:
        if route.body == "*":
            return []
        bound = {p.split(".")[0] for p in route.path_fields} | {route.body}
        out = []
        for name, leaf in query_fields(route.rpc.input):
            if name.split(".")[0] in bound:
                continue
            description = self.comments.get(leaf.full_name, "")
            oneof = leaf.containing_oneof
            if oneof is not None and len(oneof.fields) > 1:
                names = ", ".join(f.name for f in oneof.fields)
                description = f"{description} At most one of {names} may be given.".strip()
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": self.field_schema(leaf),
            }
            if is_repeated(leaf):
                parameter["explode"] = True
            out.append(parameter)
        return out

    def request_body(self, route: HttpRoute) -> dict[str, Any]:
        if route.body == "*":
            schema = self.message_ref(route.rpc.input)
            note = "The request message; fields bound by the path are taken from the path."
        else:
            field = route.rpc.input.fields_by_name[route.body]
            schema = self.field_schema(field)
            note = self.comments.get(field.full_name, "")
        return {
            "required": False,
            "description": note,
            "content": {"application/json": {"schema": schema}},
        }

    def success(self, route: HttpRoute) -> dict[str, Any]:
        output = route.rpc.output
        if route.response_body:
            schema = self.field_schema(output.fields_by_name[route.response_body])
        else:
            schema = self.message_ref(output)
        if route.rpc.server_streaming:
            return {
                "description": "A stream: one JSON object per line (NDJSON), flushed as it "
                "comes. An error after the stream started arrives as a last line "
                '{"error": ..., "code": ...}.',
                "content": {NDJSON: {"schema": schema}},
            }
        description = self.comments.get(output.full_name, "") or output.name
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def message_ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursive types end here
            self.schemas[message.full_name] = self.message_schema(message)
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        if enum.full_name not in self.schemas:
            lines = [self.comments.get(enum.full_name, "")]
            for value in enum.values:
                text = self.comments.get(f"{enum.full_name}.{value.name}", "")
                shown = enum_words.word(enum, value.name)
                lines.append(f"- `{shown}`: {text}" if text else f"- `{shown}`")
            lines.append("Requests may also give the proto name or the number.")
            self.schemas[enum.full_name] = {
                "type": "string",
                "enum": enum_words.words(enum),
                "description": "\n".join(line for line in lines if line),
            }
        return {"$ref": f"#/components/schemas/{enum.full_name}"}

    def message_schema(self, message: Descriptor) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in message.fields:
            prop = self.field_schema(field)
            text = self.comments.get(field.full_name)
            if text:
                prop = {**prop, "description": text}
            properties[field.name] = prop
        description = self.comments.get(message.full_name, "")
        oneofs = [o for o in message.oneofs if len(o.fields) > 1]
        for oneof in oneofs:
            names = ", ".join(f.name for f in oneof.fields)
            description += f"\n\nAt most one of {names} may be given ({oneof.name})."
        schema: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if description.strip():
            schema["description"] = description.strip()
        return schema

    def field_schema(self, field: FieldDescriptor, *, item: bool = False) -> dict[str, Any]:
        if is_map(field):
            value = message_of(field).fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.field_schema(value)}
        if is_repeated(field) and not item:
            return {"type": "array", "items": self.field_schema(field, item=True)}
        if is_leaf_message(field) or is_walkable_message(field):
            return self.message_ref(message_of(field))
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        if field.type in INT64_TYPES:
            schema = dict(_INT64)
            if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
                schema["minimum"] = 0
            return schema
        return dict(_SCALARS.get(field.type, {}))


def _seed_operation(operation: dict[str, Any], seed: SeedRoute) -> None:
    """Turns an operation of our shape into the seed route's: its answer and query names."""
    status = next(code for code in operation["responses"] if code[0] == "2")
    operation["responses"][status] = {
        "description": "The seed's wire format.",
        "content": {"application/json": {"schema": seed.schema}},
        "headers": {
            IGNORED_HEADER: {
                "description": "Query parameters that name no field, ignored as the seed "
                "ignores them.",
                "schema": {"type": "string"},
            }
        },
    }
    parameters: list[dict[str, Any]] = []
    for ours in operation["parameters"]:
        name = ours.get("name", "")
        default = seed.defaults.get(name)
        parameters.append(
            ours if default is None else {**ours, "description": f"Default here: {default}."}
        )
        parameters.extend(
            {**ours, "name": alias, "description": f"The seed's name for {name}."}
            for alias, target in seed.aliases.items()
            if target == name
        )
    operation["parameters"] = parameters
    operation["description"] += (
        "\n\nSeed route: the answer is the seed's wire format; query parameters naming "
        "no field are ignored; empty values count as absent."
    )


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error_response(description: str) -> dict[str, Any]:
    return _json_response(description, "Error")


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string", "description": "What went wrong, naming the field."},
            "code": {
                "type": "string",
                "description": "gRPC status name.",
                "enum": [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK],
            },
        },
        "additionalProperties": False,
    }
