"""HTTP request → request message, and message → JSON.

Request: with ``body: "*"`` the JSON body is the request message (no query
parameters then); with ``body: "<field>"`` the body is that field and query
parameters give the others; without a body, query parameters give the
fields. Path variables are set last and override. Everything is checked by
:mod:`gateway.json_check` (400 naming the field) and then parsed by
``json_format.ParseDict`` with unknown fields refused.

Response: ``json_format.MessageToDict`` with proto field names and every
field printed (``"count": 0`` shows). Two departures from canonical proto3
JSON, made in one walk over that dict: 64-bit integers are written as JSON
numbers, not strings, whenever they fit a double exactly (|n| < 2**53, true
of every position, count and version this system produces), so that every
number reads as a number, larger ones stay strings (docs/adr/0001); enum
values are lower-case words without the enum's prefix (``active``, not
``USER_STATUS_ACTIVE``; :mod:`gateway.enum_words`, docs/adr/0008). Either
form of both is accepted on input.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway import enum_words
from gateway.errors import GatewayError, bad_fields, bad_request
from gateway.fields import (
    INT64_TYPES,
    find_field,
    is_map,
    is_message,
    is_repeated,
    is_walkable_message,
    message_of,
    resolve_path,
)
from gateway.json_check import normalize
from gateway.query_params import query_to_json, text_to_json
from gateway.routes import HttpRoute
from service_kit import request_validation
from service_kit.error_details import FieldViolation
from service_kit.errors import ServiceError

_SAFE_INTEGER = 2**53 - 1
_INT64_WRAPPERS = frozenset({"google.protobuf.Int64Value", "google.protobuf.UInt64Value"})


def build_request(
    route: HttpRoute,
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message for an HTTP request; raises GatewayError 400 naming the field."""
    try:
        return _parsed(route, path_params=path_params, query=query, body=body)
    except GatewayError as exc:
        if exc.status != 400 or not exc.violations:
            raise
        rules = _rule_violations_of_the_rest(
            route, exc.violations, path_params=path_params, query=query, body=body
        )
        if not rules:
            raise
        raise bad_fields([*exc.violations, *rules]) from None


def _parsed(
    route: HttpRoute,
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
    drop: frozenset[str] = frozenset(),
) -> Message:
    message = route.rpc.input
    try:
        data = _gather(route, message, path_params=path_params, query=query, body=body, drop=drop)
        data = normalize(message, data, "")
    except RecursionError:
        raise bad_request("body", "nested too deeply") from None
    request = route.rpc.request_class()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        # json_check accepted it, so this is rare (e.g. a deeply nested Struct).
        raise bad_request("body", str(exc).splitlines()[0]) from None
    return request


def _top_field(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _rule_violations_of_the_rest(
    route: HttpRoute,
    found: Sequence[FieldViolation],
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
) -> list[FieldViolation]:
    """What else is wrong with the request beyond ``found``, its first problems.

    A field of the wrong JSON type stops the request before the backend
    checks its rules (and a query parameter that is not a number stops the
    check of the others' forms), so without this a client would learn of a
    too-short password only on its second try. The request is parsed again
    without the bad fields, as often as that turns up more of them, and the
    rest is checked against the same protovalidate rules the backend
    enforces; rules on the dropped fields themselves (e.g. "required") are
    left out. Best effort: a request that still cannot be built adds what
    was found so far. Each pass drops at least one more field, so it ends.
    """
    more: list[FieldViolation] = []
    bad = frozenset(_top_field(v.field) for v in found)
    while True:
        try:
            rest = _parsed(route, path_params=path_params, query=query, body=body, drop=bad)
            rules = request_validation.violations(rest)
        except GatewayError as exc:
            new = [v for v in exc.violations if _top_field(v.field) not in bad]
            if not new:
                return more
            more.extend(new)
            bad |= {_top_field(v.field) for v in new}
            continue
        except ServiceError:
            return more
        return more + [v for v in rules if _top_field(v.field) not in bad]


def _gather(
    route: HttpRoute,
    message: Descriptor,
    *,
    path_params: Mapping[str, str],
    query: Sequence[tuple[str, str]],
    body: bytes,
    drop: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The request's fields as JSON keyed by proto names; ``drop`` names fields to leave out."""
    data: dict[str, Any]
    if route.body == "*":
        if query:
            name = query[0][0]
            raise bad_request(name, "not accepted as a query parameter; send fields in the body")
        raw = parse_body(body)
        if drop and isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if _body_key_name(message, k) not in drop}
        data = normalize(message, {} if raw is None else raw, "body")
    else:
        in_body = (route.body,) if route.body else ()
        if drop:
            query = [(k, v) for k, v in query if _top_field(k) not in drop]
        data = query_to_json(message, query, in_path=set(path_params), in_body=in_body)
        raw = parse_body(body)
        if route.body:
            if raw is not None:
                data[route.body] = raw
        elif raw not in (None, {}):
            raise bad_request("body", "this route takes no request body; use query parameters")
    for field_path, text in path_params.items():
        chain = resolve_path(message, field_path)
        parent = data
        for f in chain[:-1]:
            nested = parent.get(f.name)
            parent = parent.setdefault(f.name, {}) if not isinstance(nested, dict) else nested
        parent[chain[-1].name] = text_to_json(chain[-1], text, field_path)
    return data


def _body_key_name(message: Descriptor, key: str) -> str:
    field = find_field(message, key)
    return key if field is None else field.name


def parse_body(body: bytes) -> Any:
    """The JSON value of a request body; None when the body is empty."""
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("body", "not UTF-8") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise bad_request(
            "body", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise bad_request("body", "nested too deeply") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice would silently lose one value; refuse it instead.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise bad_request(key, "given more than once in the body")
        out[key] = value
    return out


# Built once: json.loads/json.dumps with options build a new decoder/encoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def message_to_dict(message: Message) -> dict[str, Any]:
    """The JSON object of a message (see the module docstring for the rules)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    # The stubs type DESCRIPTOR as a union with upb's class; it is the same API.
    _http_values(cast(Descriptor, message.DESCRIPTOR), data)
    return data


def render(route: HttpRoute, message: Message) -> Any:
    """The JSON value answered for a response message (``response_body`` applied)."""
    data = message_to_dict(message)
    if route.response_body:
        return data.get(route.response_body)
    return data


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(value).encode("utf-8")


def _http_values(message: Descriptor, data: dict[str, Any]) -> None:
    """Rewrites, in place, int64 strings as numbers and enum names as words."""
    for name, field, map_value in _rewritten_fields(message):
        if name not in data:
            continue
        value = data[name]
        if map_value is not None:
            for key, item in value.items():
                value[key] = _converted(map_value, item)
        elif is_repeated(field):
            data[name] = [_converted(field, item) for item in value]
        else:
            data[name] = _converted(field, value)


@functools.cache
def _rewritten_fields(
    message: Descriptor,
) -> tuple[tuple[str, FieldDescriptor, FieldDescriptor | None], ...]:
    """The fields of a message type whose JSON ``_converted`` may change, once per type:
    (name, field, the value field when it is a map). The others (strings, bools,
    32-bit numbers, timestamps...) print as MessageToDict printed them."""
    out: list[tuple[str, FieldDescriptor, FieldDescriptor | None]] = []
    for field in message.fields:
        if is_map(field):
            value_field = message_of(field).fields_by_name["value"]
            if _may_change(value_field):
                out.append((field.name, field, value_field))
        elif _may_change(field):
            out.append((field.name, field, None))
    return tuple(out)


def _may_change(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_ENUM
        or field.type in INT64_TYPES
        or (is_message(field) and message_of(field).full_name in _INT64_WRAPPERS)
        or is_walkable_message(field)
    )


def _converted(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, str) and field.enum_type is not None:
            return enum_words.word(field.enum_type, value)
        return value  # a number the enum does not name: printed as the number
    if field.type in INT64_TYPES or (
        is_message(field) and message_of(field).full_name in _INT64_WRAPPERS
    ):
        if isinstance(value, str):
            number = int(value)
            return number if -_SAFE_INTEGER <= number <= _SAFE_INTEGER else value
        return value
    if is_walkable_message(field) and isinstance(value, dict):
        _http_values(message_of(field), value)
    return value
