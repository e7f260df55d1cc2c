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

What the contract says about access and requests shows too, so that a
client generated from this document knows the rules the services enforce:

- **security** per operation from the RPC's ``(cqrs.access.v1.access)`` rule:
  ``[]`` for a public one, the bearer scheme for the others, and the rule in
  words in the description;
- **required** lists and **bounds** of request fields from
  ``google.api.field_behavior`` and the ``buf.validate`` rules
  (:mod:`gateway.field_rules`); a response lists as required every field the
  gateway always prints (those without presence);
- **errors**: each operation's possible error statuses, with the error
  schema (``violations`` on a 400) and ``Retry-After`` on a 429 and a 503;
- **bounds** the server enforces (:class:`ServerBounds`, from the gateway's
  settings): body size (413), the time to send a request and its head size
  (408, 431), connections (503) and requests in flight (429) per client, and
  how long ``min_position`` may wait; in the document's description and in
  the responses and parameters they concern;
- **schema names** are the messages' own (``RegisterRequest``, ``User``); a
  body of a route whose path binds fields is its own schema without them
  (``ChangeEmailRequestBody``);
- **NDJSON** streams (server-streaming RPCs) say what each line holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from gateway import enum_words, field_rules
from gateway.comments import summary
from gateway.connection_limits import MAX_HEAD_BYTES
from gateway.errors import BEARER_CHALLENGE
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
from gateway.in_flight_limits import DEFAULT_PER_CLIENT
from gateway.profiles import ServedRoute
from gateway.routes import HttpRoute
from gateway.seed_format import IGNORED_HEADER, SCHEMAS, SeedRoute
from service_kit.access import method_rules
from service_kit.auth import Access

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

# gRPC metadata is printable ASCII: the gateway refuses anything else (gateway.forwarding).
_PRINTABLE = "^[\\x20-\\x7e]*$"
# How long min_position waits: query_svc's bound (query_svc.servicer), not the gateway's.
_WAIT_BOUND = (
    "The wait is bounded: at most QUERY_WAIT_TIMEOUT_MS (5 s by default) for a signed-in "
    "caller, 1 s for an anonymous one (a login); a position not reached by then, or one a "
    "stalled read model cannot reach, is a 503 (retry later)."
)


@dataclass(frozen=True, slots=True)
class ServerBounds:
    """The bounds the gateway enforces, as its settings set them (defaults: theirs)."""

    max_body_bytes: int = 1024 * 1024
    read_timeout: float = 10.0
    max_head_bytes: int = MAX_HEAD_BYTES
    max_connections: int = 1000
    max_connections_per_client: int = 100
    max_in_flight_per_client: int = DEFAULT_PER_CLIENT

    @classmethod
    def of(cls, settings: object) -> ServerBounds:
        """The bounds ``settings`` (a ``GatewaySettings``, whose fields have the same
        names) enforce; a bound the settings do not set keeps its fixed value."""
        names = [f.name for f in fields(cls) if hasattr(settings, f.name)]
        return cls(**{name: getattr(settings, name) for name in names})

    def description(self) -> str:
        """Every bound in words, for the document's description."""
        return (
            "Bounds the server enforces, on every path: a request body over "
            f"{self.max_body_bytes} bytes is 413; a request's head and body must arrive "
            f"within {self.read_timeout:g} s of its first byte (else 408, connection closed), "
            f"and a head over {self.max_head_bytes} bytes is 431; beyond "
            f"{self.max_connections} open connections, or {self.max_connections_per_client} "
            "from one client address, a new connection is answered 503 with Retry-After and "
            f"closed; beyond {self.max_in_flight_per_client} requests in flight from one client "
            "address (a streamed answer holds its slot while it streams), a request is 429 "
            "with Retry-After. min_position / X-Min-Position: " + _WAIT_BOUND
        )


_HEADERS: dict[str, dict[str, Any]] = {
    "CorrelationId": {
        "name": "X-Correlation-Id",
        "in": "header",
        "description": "Correlation id recorded with the events a command causes; "
        "generated when absent and echoed in the response.",
        "schema": {"type": "string", "maxLength": 128, "pattern": _PRINTABLE},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "Makes a retried command take effect once.",
        "schema": {"type": "string", "maxLength": 128, "pattern": _PRINTABLE},
    },
    "MinPosition": {
        "name": "X-Min-Position",
        "in": "header",
        "description": "Wait (bounded) until the read model has applied this global position. "
        + _WAIT_BOUND,
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
            "security": [],
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
            "security": [],
            "summary": "Liveness: the gateway serves HTTP (no backend is asked).",
            "responses": {"200": {"description": '{"status": "ok"}'}},
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "Gateway_OpenApi",
            "tags": ["Gateway"],
            "summary": "This document.",
            "security": [],
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

BEARER: dict[str, list[str]] = {"bearerAuth": []}

# The rule of each access level in words, for an operation's description.
_ACCESS_WORDS = {
    "public": "anyone (no token needed)",
    "authenticated": "any signed-in caller",
    "owner": "the user whose id is `{field}`, an admin, or a service",
    "admin": "admins (and the project's services)",
    "service": "the project's services only",
}

# Error responses (components.responses) and when an operation lists each.
_ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "The request is invalid: every invalid field is listed in `violations` "
        "(INVALID_ARGUMENT), or the user's state forbids the command (FAILED_PRECONDITION).",
    ),
    "401": ("Unauthorized", "No valid bearer token (missing, invalid, expired or revoked)."),
    "403": ("Forbidden", "The token's caller may not do this (see the access rule)."),
    "404": ("NotFound", "No such user, stream or snapshot."),
    "409": ("Conflict", "Taken (ALREADY_EXISTS, e.g. the email) or changed meanwhile (ABORTED)."),
    "408": (
        "RequestTimeout",
        "The request's head and body did not arrive in time; the connection is closed.",
    ),
    "413": ("PayloadTooLarge", "The body is larger than the gateway accepts."),
    "429": ("TooManyRequests", "Too many requests; retry after `Retry-After` seconds."),
    "431": ("RequestHeaderFieldsTooLarge", "The request's head is larger than the gateway reads."),
    "503": (
        "Unavailable",
        "A backend or one of its dependencies is unavailable (named in the message), or "
        "the client holds too many connections; retry, after `Retry-After` seconds when given.",
    ),
}
_RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
_CHALLENGE_HEADER: dict[str, Any] = {
    "description": "The scheme to authenticate with (RFC 6750).",
    "schema": {"type": "string", "const": BEARER_CHALLENGE},
}


def build_document(
    routes: Sequence[ServedRoute],
    comments: Mapping[str, str],
    *,
    title: str = "cqrs-users REST gateway",
    version: str = "1",
    access: Mapping[str, Access] | None = None,
    bounds: ServerBounds | None = None,
) -> dict[str, Any]:
    """The OpenAPI document for these routes (plus /health and /openapi.json).

    ``access`` is each gRPC method path's rule (default: the contract's); a
    method without one is documented as needing a token (deny by default).
    ``bounds``: what the gateway enforces (default: its settings' defaults).
    """
    bounds = bounds or ServerBounds()
    rules = access if access is not None else {r.path: r.access for r in method_rules()}
    builder = _Builder(comments, rules)
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
    schemas["FieldViolation"] = _violation_schema()
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
            "shape. Each operation says who may call it (its security: none for a public "
            "one, a bearer token from POST /login otherwise). Errors answer "
            '{"error": "<message>", "code": "<gRPC status name>"}, and a 400 for invalid '
            'fields lists every one: "violations": [{"field": ..., "description": ...}].'
            "\n\n" + bounds.description(),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "parameters": _HEADERS,
            "responses": _error_responses(bounds),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access token of POST /login (or POST /token/refresh).",
                }
            },
        },
        # Operations say their own; this is what an operation without one would need.
        "security": [BEARER],
    }


class _Builder:
    def __init__(self, comments: Mapping[str, str], access: Mapping[str, Access]) -> None:
        self.comments = comments
        self.access = access
        self.schemas: dict[str, dict[str, Any]] = {}
        self._names: dict[str, str] = {}  # schema name -> full name of what it describes

    def name(self, full_name: str, suffix: str = "") -> str:
        """A readable schema name: the message's own, qualified only on a clash."""
        short = full_name.rsplit(".", 1)[-1] + suffix
        owner = self._names.setdefault(short, full_name + suffix)
        if owner == full_name + suffix:
            return short
        package = full_name.split(".")[1:-1]  # cqrs.query.v1.User -> query, v1
        return "".join(p[:1].upper() + p[1:] for p in package) + short

    def operation(self, route: HttpRoute, operation_id: str) -> dict[str, Any]:
        rpc = route.rpc
        comment = self.comments.get(rpc.full_name, "")
        rule = self.access.get(rpc.path)
        public = rule is not None and rule.kind == "public"
        description = f"{comment}\n\nWho may call: {_who(rule)}.\n\ngRPC: `{rpc.path}`".strip()
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [rpc.service.rsplit(".", 1)[-1]],
            "summary": summary(comment) if comment else rpc.name,
            "description": description,
            "security": [] if public else [BEARER],
            "parameters": [
                *self.path_parameters(route),
                *self.query_parameters(route),
                *({"$ref": f"#/components/parameters/{name}"} for name in _HEADERS),
            ],
        }
        if route.body:
            operation["requestBody"] = self.request_body(route)
        responses: dict[str, Any] = {str(route.success_status): self.success(route)}
        for status in _error_statuses(route, public):
            responses[status] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
        responses["default"] = _error_response("Anything else: 500 (a bug, logged), 501, 502, 504.")
        operation["responses"] = responses
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
                    "schema": self.field_schema(leaf, item=True, request=True),
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
            if name == "min_position":
                description = f"{description} {_WAIT_BOUND}".strip()
            oneof = leaf.containing_oneof
            if oneof is not None and len(oneof.fields) > 1:
                names = ", ".join(f.name for f in oneof.fields)
                description = f"{description} At most one of {names} may be given.".strip()
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": "." not in name and field_rules.is_required(leaf),
                "description": description,
                "schema": self.field_schema(leaf, request=True),
            }
            if is_repeated(leaf):
                parameter["explode"] = True
            out.append(parameter)
        return out

    def request_body(self, route: HttpRoute) -> dict[str, Any]:
        message = route.rpc.input
        if route.body == "*":
            in_path = {p.split(".")[0] for p in route.path_fields}
            schema = self.message_ref(message, request=True, without=frozenset(in_path))
            note = "The request message"
            note += "; fields bound by the path are taken from the path." if in_path else "."
            required = any(
                field_rules.is_required(f) for f in message.fields if f.name not in in_path
            )
        else:
            field = message.fields_by_name[route.body]
            schema = self.field_schema(field, request=True)
            note = self.comments.get(field.full_name, "")
            required = field_rules.is_required(field)
        return {
            "required": required,
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
                "description": "A stream of JSON lines (NDJSON, `application/x-ndjson`): each "
                "line is one message with the schema below, flushed as it comes; the stream "
                "lasts until the server ends it or the client disconnects. An error after the "
                'stream started arrives as a last line with the Error schema ({"error": ..., '
                '"code": ...}). An error before the first line is an ordinary error response.',
                "content": {NDJSON: {"schema": schema}},
            }
        description = self.comments.get(output.full_name, "") or output.name
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def message_ref(
        self,
        message: Descriptor,
        *,
        request: bool = False,
        without: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """A reference to the message's schema (built once); ``without`` leaves fields
        out (a body without its path-bound fields gets a name of its own)."""
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        name = self.name(message.full_name, "Body" if without else "")
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive types end here
            self.schemas[name] = self.message_schema(message, request=request, without=without)
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = self.name(enum.full_name)
        if name not in self.schemas:
            lines = [self.comments.get(enum.full_name, "")]
            for value in enum.values:
                text = self.comments.get(f"{enum.full_name}.{value.name}", "")
                shown = enum_words.word(enum, value.name)
                lines.append(f"- `{shown}`: {text}" if text else f"- `{shown}`")
            lines.append("Requests may also give the proto name or the number.")
            self.schemas[name] = {
                "type": "string",
                "enum": enum_words.words(enum),
                "description": "\n".join(line for line in lines if line),
            }
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(
        self, message: Descriptor, *, request: bool, without: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in without:
                continue
            prop = self.field_schema(field, request=request)
            text = self.comments.get(field.full_name)
            if text:
                prop = {**prop, "description": text}
            properties[field.name] = prop
            # A request names what the contract requires; a response, every field
            # the gateway always prints (those without presence).
            if field_rules.is_required(field) if request else not field.has_presence:
                required.append(field.name)
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
        if required:
            schema["required"] = required
        if description.strip():
            schema["description"] = description.strip()
        return schema

    def field_schema(
        self, field: FieldDescriptor, *, item: bool = False, request: bool = False
    ) -> dict[str, Any]:
        if is_map(field):
            value = message_of(field).fields_by_name["value"]
            return {
                "type": "object",
                "additionalProperties": self.field_schema(value, request=request),
            }
        if is_repeated(field) and not item:
            array = {"type": "array", "items": self.field_schema(field, item=True, request=request)}
            return {**array, **(field_rules.item_bounds(field) if request else {})}
        if is_leaf_message(field) or is_walkable_message(field):
            return self.message_ref(message_of(field), request=request)
        if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        if field.type in INT64_TYPES:
            schema = dict(_INT64)
            if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
                schema["minimum"] = 0
        else:
            schema = dict(_SCALARS.get(field.type, {}))
        if request:
            schema.update(field_rules.value_bounds(field))
        return schema


def _who(rule: Access | None) -> str:
    if rule is None:
        return "nobody (no access rule: refused)"
    return _ACCESS_WORDS.get(rule.kind, rule.kind).format(field=rule.field)


def _error_statuses(route: HttpRoute, public: bool) -> list[str]:
    """The error statuses an operation can answer (besides ``default``)."""
    statuses = ["400", "408"]
    if not public:
        statuses += ["401", "403"]
    if route.path_fields:
        statuses.append("404")
    if route.verb != "GET":
        statuses.append("409")
    if route.body:
        statuses.append("413")
    return [*statuses, "429", "431", "503"]


def _error_responses(bounds: ServerBounds) -> dict[str, Any]:
    stated = {  # the bound each status enforces, in its own words
        "408": f"Within {bounds.read_timeout:g} s of the request's first byte.",
        "413": f"At most {bounds.max_body_bytes} bytes.",
        "429": "Refused by a budget of the services (logins, registrations, ...) or by the "
        f"gateway's bound of {bounds.max_in_flight_per_client} requests in flight per client "
        "address.",
        "431": f"At most {bounds.max_head_bytes} bytes.",
        "503": f"At most {bounds.max_connections} connections in all, "
        f"{bounds.max_connections_per_client} from one client address.",
    }
    responses: dict[str, Any] = {}
    for status, (name, description) in _ERRORS.items():
        response = _error_response(f"{description} {stated.get(status, '')}".strip())
        if status in ("429", "503"):
            response["headers"] = {"Retry-After": _RETRY_AFTER_HEADER}
        if status == "401":
            response["headers"] = {"WWW-Authenticate": _CHALLENGE_HEADER}
        responses[name] = response
    return responses


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
            "violations": {
                "type": "array",
                "description": "On a 400 for invalid fields: every one of them.",
                "items": {"$ref": "#/components/schemas/FieldViolation"},
            },
        },
        "additionalProperties": False,
    }


def _violation_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["field", "description"],
        "properties": {
            "field": {
                "type": "string",
                "description": "Path of the field in proto names, e.g. `password` or "
                "`events[0].event_id`.",
            },
            "description": {"type": "string", "description": "What is wrong with it."},
        },
        "additionalProperties": False,
    }
