"""The seed's HTTP wire format, for the routes the seed documents.

The seed's clients (its Postman collection, scripts, Go structs) decode the
seed's JSON. On the seed's routes, unprefixed, the gateway answers in that
format: every key the seed returns with the seed's type, plus the keys of
our own shape where they do not clash (docs/adr/0007-seed-wire-format-and-v1.md).
Our shapes are served under ``/v1`` (:mod:`gateway.profiles`).

One table, :data:`SEED_ROUTES`, keyed by the annotated route (verb and
template text), says per route: which query names the seed used for our
fields, which defaults differ, how the reply is re-shaped, and the OpenAPI
schema of the answer. Re-shaping works on the dict the transcoder already
built (no second encode) and, in a seed route, always renders:

- an event as the seed's event: ``id`` (our ``event_id``) and ``payload`` as
  a JSON-encoded string, beside our keys;
- a user state as the seed's state: ``id`` (our ``user_id``) and
  ``event_count`` (events folded into it: our ``version``), beside ours.

Query parameters on a seed route follow the seed's handlers (Gin's
``c.Query``): an empty value is no value, and a parameter naming no field
is ignored and listed in the ``X-Ignored-Query-Parameters`` answer header;
a known parameter with a bad value is still 400 naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from gateway.errors import not_found
from gateway.fields import resolve_path
from gateway.routes import HttpRoute, RouteError

IGNORED_HEADER = "X-Ignored-Query-Parameters"
NEXT_PAGE_HEADER = "X-Next-Page-Token"

Headers = dict[str, str]
# (request message, reply as our JSON dict, answer headers to add to) -> JSON body
Render = Callable[[Message, dict[str, Any], Headers], Any]


@dataclass(frozen=True, slots=True)
class SeedRoute:
    """How one of the seed's routes differs from our shape.

    ``aliases`` maps a query name the seed used to our field's name;
    ``defaults`` are query values used when the request gives none;
    ``render`` re-shapes our reply (None: our shape already is the seed's);
    ``schema`` is the answer's OpenAPI schema.
    """

    verb: str
    path: str
    schema: dict[str, Any]
    render: Render | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)


# --- query parameters ----------------------------------------------------------------


def seed_query(
    seed: SeedRoute, route: HttpRoute, pairs: Iterable[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(the parameters to transcode, the names ignored), the seed's way.

    Kept: parameters naming a field the query may set (by our name or the
    seed's alias), in order. Dropped silently: empty values. Ignored and
    reported: everything else (unknown names, fields the path or body
    carries). Defaults fill what is left unset.
    """
    bound = {p.split(".")[0] for p in route.path_fields}
    kept: list[tuple[str, str]] = []
    ignored: list[str] = []
    for name, value in pairs:
        if value == "":
            continue
        target = seed.aliases.get(name, name)
        if route.body != "*" and _settable(route, target, bound):
            kept.append((target, value))
        elif name not in ignored:
            ignored.append(name)
    given = {name for name, _ in kept}
    kept.extend((name, value) for name, value in seed.defaults.items() if name not in given)
    return kept, ignored


def ignored_header(ignored: Sequence[str]) -> str:
    """The ``X-Ignored-Query-Parameters`` value: the names, made safe for a header.

    The names are the client's own text: anything but printable ASCII is
    dropped (no CR/LF can reach the answer's headers), each is cut to 64
    characters and the whole to 1,000.
    """
    safe = ("".join(c for c in name if " " <= c <= "~")[:64] for name in ignored)
    return ", ".join(safe)[:1000]


def _settable(route: HttpRoute, name: str, bound: set[str]) -> bool:
    try:
        chain = resolve_path(route.rpc.input, name)
    except KeyError:
        return False
    return chain[0].name not in bound and chain[0].name != route.body


# --- shared shapes -------------------------------------------------------------------


def seed_event(event: dict[str, Any]) -> dict[str, Any]:
    """Our event dict, re-shaped in place as the seed's (see the module docstring)."""
    event["id"] = event.get("event_id", "")
    event["payload"] = json.dumps(
        event.get("payload") or {}, ensure_ascii=False, separators=(",", ":")
    )
    return event


def seed_events(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [seed_event(e) for e in events]


def seed_state(state: dict[str, Any]) -> dict[str, Any]:
    """Our user-state dict, re-shaped in place as the seed's (see the module docstring)."""
    state["id"] = state.get("user_id", "")
    state["event_count"] = state.get("version", 0)
    return state


def _go_name(name: str) -> str:
    """``created_at`` -> ``CreatedAt``, ``id`` -> ``ID`` (Go's exported field names)."""
    return "".join("ID" if part == "id" else part.capitalize() for part in name.split("_"))


def seed_user(user: dict[str, Any]) -> dict[str, Any]:
    """Our user as the seed's GORM model encodes it: Go field names."""
    return {_go_name(key): value for key, value in user.items()}


def health_body(body: dict[str, Any]) -> dict[str, Any]:
    """``/health`` with the seed's ``total_events`` beside our keys (None when unknown).

    Kept here, not in :mod:`gateway.health`, so that health checks can change
    without touching the seed's keys.
    """
    body["total_events"] = body.get("event_count")
    return body


# --- per-route renderers ---------------------------------------------------------


def _login(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    user = data.get("user") or {}
    data["user_id"] = user.get("id", "")
    data["email"] = user.get("email", "")
    return data


def _users(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    token = data.get("next_page_token")
    if token:
        headers[NEXT_PAGE_HEADER] = token
    # The seed knows two statuses; an erased account is gone as far as its
    # clients can tell (the /v1 listing shows it, with status "erased").
    users = data.get("users", [])
    return [seed_user(user) for user in users if user.get("status") != "erased"]


def _events(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    seed_events(data.get("events", []))
    return data


def _count(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    data["total_events"] = data.get("count", 0)
    return data


def _state(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    state = seed_state(data["state"])
    data["user_id"] = state["id"]
    data["message"] = f"State reconstructed from {data.get('events_replayed', 0)} events"
    return data


def _state_at(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    state = seed_state(data["state"])
    # Asked by version (our addition), the state is as of its last event.
    moment = data.get("as_of") or state.get("updated_at", "")
    data["user_id"] = state["id"]
    data["point_in_time"] = moment
    data["message"] = (
        f"State at {moment} reconstructed from {data.get('events_replayed', 0)} events"
    )
    return data


def _history(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    entries = data.get("entries", [])
    for entry in entries:
        seed_event(entry["event"])
    data["user_id"] = data.get("aggregate_id", "")
    data["history"] = [seed_state(entry["state"]) for entry in entries]
    data["total_changes"] = len(entries)
    data["message"] = f"History of {len(entries)} changes"
    return data


def _compare(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    # The seed's before/after are states, never null: a time before the user
    # existed is 404, as the seed answers it.
    aggregate_id = data.get("aggregate_id", "")
    times = {"time1": _time(request, "time1"), "time2": _time(request, "time2")}
    for key, name in (("state1", "time1"), ("state2", "time2")):
        if key not in data:
            raise not_found(f"user {aggregate_id} did not exist at {times[name]}")
    data["user_id"] = aggregate_id
    data.update(times)
    data["before"] = seed_state(data["state1"])
    data["after"] = seed_state(data["state2"])
    data["changes"] = {
        c["field"]: {"before": c["before"], "after": c["after"]} for c in data.get("changes", [])
    }
    return data


def _time(request: Message, name: str) -> str:
    value: str = getattr(request, name).ToJsonString()
    return value


def _create_snapshot(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    snapshot = data["snapshot"]
    seed_state(snapshot["state"])
    data["aggregate_id"] = snapshot["aggregate_id"]
    return data


def _snapshot(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    snapshot = data["snapshot"]
    seed_state(snapshot["state"])
    data.update(snapshot)  # aggregate_id, version, state, created_at, schema_version
    return data


def _snapshot_state(request: Message, data: dict[str, Any], headers: Headers) -> Any:
    state = seed_state(data["state"])
    for key, value in state.items():
        data.setdefault(key, value)
    data["aggregate_id"] = state["id"]
    return data


# --- OpenAPI schemas of the seed's answers -----------------------------------------

_EXTRAS = "Plus the keys of our shape (the /v1 route) that do not clash."
_STRING: dict[str, Any] = {"type": "string"}
_INTEGER: dict[str, Any] = {"type": "integer"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], description: str = _EXTRAS) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(required),
        "properties": required,
        "additionalProperties": True,
        "description": description,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "SeedEvent": _object(
        {
            "id": {**_STRING, "description": "The event's id (our event_id)."},
            "event_type": _STRING,
            "aggregate_id": _STRING,
            "payload": {
                **_STRING,
                "contentMediaType": "application/json",
                "description": "The event's data as a JSON-encoded string; a password "
                'hash reads "[REDACTED]".',
            },
            "timestamp": _TIME,
            "version": _INTEGER,
        },
        "An event as the seed encodes it. " + _EXTRAS,
    ),
    "SeedUserState": _object(
        {
            "id": _STRING,
            "email": _STRING,
            "status": {"type": "string", "enum": ["active", "deactivated", "erased"]},
            "created_at": _TIME,
            "updated_at": _TIME,
            "version": _INTEGER,
            "event_count": {**_INTEGER, "description": "Events folded into this state."},
        },
        "A user's state as the seed encodes it. " + _EXTRAS,
    ),
    "SeedUser": _object(
        {
            "ID": _STRING,
            "Email": _STRING,
            "Status": {"type": "string", "enum": ["active", "deactivated"]},
            "CreatedAt": _TIME,
            "UpdatedAt": _TIME,
        },
        "A user of the read model with Go's field names, as the seed's GORM model "
        "encodes it; every field of ours is there under its Go name. Erased "
        "accounts are left out of the seed's listing (GET /v1/users shows them).",
    ),
}

_EVENTS = {"type": "array", "items": _ref("SeedEvent")}
_STATE = _ref("SeedUserState")


def _route(
    verb: str, path: str, render: Render | None, schema: dict[str, Any], **kwargs: Any
) -> SeedRoute:
    return SeedRoute(verb, path, schema, render, **kwargs)


_TIME_ALIASES = {"start_time": "since", "end_time": "until"}

SEED_ROUTES: dict[tuple[str, str], SeedRoute] = {
    (r.verb, r.path): r
    for r in (
        _route("POST", "/register", None, _object({"id": _STRING, "message": _STRING})),
        _route("PUT", "/users/{id}/password", None, _object({"message": _STRING})),
        _route("PUT", "/users/{id}/email", None, _object({"message": _STRING})),
        _route(
            "POST",
            "/login",
            _login,
            _object({"token": _STRING, "user_id": _STRING, "email": _STRING}),
        ),
        _route(
            "GET",
            "/users",
            _users,
            {
                "type": "array",
                "items": _ref("SeedUser"),
                "description": "Every user, oldest first, up to page_size (default and "
                f"most 1000); the next page's token is in the {NEXT_PAGE_HEADER} header.",
            },
            defaults={"page_size": "1000"},
        ),
        _route(
            "GET",
            "/events",
            _events,
            _object({"events": _EVENTS, "count": _INTEGER}),
            aliases=_TIME_ALIASES,
        ),
        _route(
            "GET",
            "/events/aggregate/{aggregate_id}",
            _events,
            _object({"aggregate_id": _STRING, "events": _EVENTS, "count": _INTEGER}),
        ),
        _route(
            "GET",
            "/events/count",
            _count,
            _object({"total_events": _INTEGER}),
            aliases=_TIME_ALIASES,
        ),
        _route(
            "GET",
            "/events/replay",
            _events,
            _object({"since": _TIME, "events": _EVENTS, "count": _INTEGER}),
        ),
        _route(
            "GET",
            "/replay/user/{aggregate_id}/state",
            _state,
            _object({"user_id": _STRING, "state": _STATE, "message": _STRING}),
        ),
        _route(
            "GET",
            "/replay/user/{aggregate_id}/state-at",
            _state_at,
            _object(
                {"user_id": _STRING, "point_in_time": _TIME, "state": _STATE, "message": _STRING}
            ),
        ),
        _route(
            "GET",
            "/replay/user/{aggregate_id}/history",
            _history,
            _object(
                {
                    "user_id": _STRING,
                    "history": {"type": "array", "items": _STATE},
                    "total_changes": _INTEGER,
                    "message": _STRING,
                }
            ),
        ),
        _route(
            "GET",
            "/replay/user/{aggregate_id}/compare",
            _compare,
            _object(
                {
                    "user_id": _STRING,
                    "time1": _TIME,
                    "time2": _TIME,
                    "before": _STATE,
                    "after": _STATE,
                    "changes": {
                        "type": "object",
                        "description": "Each changed field -> its values at time1 and time2.",
                        "additionalProperties": _object(
                            {"before": _STRING, "after": _STRING}, "One field's change."
                        ),
                    },
                }
            ),
        ),
        _route(
            "POST",
            "/snapshots/{aggregate_id}",
            _create_snapshot,
            _object({"message": _STRING, "aggregate_id": _STRING}),
        ),
        _route(
            "GET",
            "/snapshots/{aggregate_id}",
            _snapshot,
            _object({"aggregate_id": _STRING, "version": _INTEGER, "state": _STATE}),
        ),
        _route(
            "GET",
            "/snapshots/{aggregate_id}/state",
            _snapshot_state,
            _object(
                {
                    "aggregate_id": _STRING,
                    "version": _INTEGER,
                    "email": _STRING,
                    "status": {"type": "string", "enum": ["active", "deactivated", "erased"]},
                    "created_at": _TIME,
                    "updated_at": _TIME,
                    "event_count": _INTEGER,
                },
                "The current state, flat, as the seed encodes it. " + _EXTRAS,
            ),
        ),
    )
}


def check_covered(
    routes: Sequence[HttpRoute], seed_routes: Mapping[tuple[str, str], SeedRoute]
) -> None:
    """Raises RouteError unless every seed route is an annotated, unary route.

    A seed route losing its annotation would break the seed's clients
    silently; the gateway refuses to start instead.
    """
    served = {(r.verb, r.template.text): r for r in routes}
    for key in seed_routes:
        route = served.get(key)
        if route is None:
            raise RouteError(f"seed route {key[0]} {key[1]}: no RPC is annotated with it")
        if route.rpc.server_streaming:
            raise RouteError(f"seed route {key[0]} {key[1]}: {route.rpc.full_name} streams")
