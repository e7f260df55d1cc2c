"""Checking JSON against a message type before it is parsed.

``json_format.ParseDict`` builds the request, but its errors name message
types, not the field the caller got wrong. This walk runs first and raises
one 400 naming the path of every bad field (``state.email``,
``events[2].version``) for an unknown field, a wrong JSON type, an integer
out of range, an unknown enum name, a bad timestamp or two members of one
oneof. It returns the object keyed by proto field names, so that path
parameters can then override body fields whichever name the body used.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway import enum_words
from gateway.errors import GatewayError, bad_request, check_each
from gateway.fields import find_field, is_leaf_message, is_map, is_message, is_repeated, message_of
from service_kit.error_details import FieldViolation

_INTEGER = re.compile(r"-?[0-9]+")
_SPECIAL_FLOATS = frozenset({"NaN", "Infinity", "-Infinity"})
_FLOAT32_MAX = 3.4028234663852886e38

_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE})

_LEAF_EXAMPLES = {
    "google.protobuf.Timestamp": "an RFC 3339 time such as 2025-10-25T19:58:00Z",
    "google.protobuf.Duration": "a duration such as 1.5s",
    "google.protobuf.FieldMask": "a comma-separated list of field paths",
}


def normalize(message: Descriptor, data: Any, where: str) -> dict[str, Any]:
    """Checks a JSON object against ``message``; returns it keyed by proto names.

    ``where`` names the object in errors: "" for the request itself (fields
    are then named bare: ``email``), "body" or a field path otherwise.
    """
    if not isinstance(data, dict):
        raise bad_request(where or "body", f"expected a JSON object, got {_kind(data)}")
    out: dict[str, Any] = {}

    def put(item: tuple[Any, Any]) -> None:
        key, value = item
        field = find_field(message, key) if isinstance(key, str) else None
        if field is None:
            raise bad_request(_join(where, str(key)), f"unknown field of {message.name}")
        if field.name in out:
            raise bad_request(_join(where, field.name), "given twice (by proto and JSON name)")
        out[field.name] = _field_value(field, value, _join(where, field.name))

    check_each(data.items(), put)  # one 400 lists every bad field, not only the first
    _check_oneofs(message, out, where)
    return out


def _field_value(field: FieldDescriptor, value: Any, name: str) -> Any:
    if value is None:
        return None  # proto3 JSON: null is the field's default
    if is_map(field):
        return _map_value(field, value, name)
    if is_repeated(field):
        if not isinstance(value, list):
            raise bad_request(name, f"expected a JSON array, got {_kind(value)}")
        items = []
        for index, item in enumerate(value):
            if item is None:
                raise bad_request(f"{name}[{index}]", "null is not allowed in a list")
            items.append(_single_value(field, item, f"{name}[{index}]"))
        return items
    return _single_value(field, value, name)


def _map_value(field: FieldDescriptor, value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(name, f"expected a JSON object, got {_kind(value)}")
    entry = message_of(field)
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    out: dict[str, Any] = {}
    for key, item in value.items():
        item_name = f"{name}[{key!r}]"
        if key_field.type == FieldDescriptor.TYPE_BOOL:
            if key not in ("true", "false"):
                raise bad_request(item_name, "map key must be true or false")
        elif key_field.type in _INT_RANGES:
            _integer(key_field, key, item_name)
        if item is None:
            raise bad_request(item_name, "null is not allowed as a map value")
        out[key] = _single_value(value_field, item, item_name)
    return out


def _single_value(field: FieldDescriptor, value: Any, name: str) -> Any:
    if is_leaf_message(field):
        return _leaf_message(field, value, name)
    if is_message(field):
        return normalize(message_of(field), value, name)
    kind = field.type
    if kind in _INT_RANGES:
        return _integer(field, value, name)
    if kind in _FLOAT_TYPES:
        return _float(field, value, name)
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise bad_request(name, f"expected true or false, got {_kind(value)}")
        return value
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise bad_request(name, f"expected a string, got {_kind(value)}")
        return value
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes(value, name)
    if kind == FieldDescriptor.TYPE_ENUM:
        return _enum(field, value, name)
    raise bad_request(name, "has a type the gateway cannot read from JSON")


def _integer(field: FieldDescriptor, value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise bad_request(name, "expected an integer, got a boolean")
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    else:
        shown = repr(value[:64]) if isinstance(value, str) else _kind(value)
        raise bad_request(name, f"expected an integer, got {shown}")
    low, high = _INT_RANGES[field.type]
    if not low <= number <= high:
        raise bad_request(name, f"{number} is outside {low}..{high}")
    return number


def _float(field: FieldDescriptor, value: Any, name: str) -> float | str:
    if isinstance(value, bool):
        raise bad_request(name, "expected a number, got a boolean")
    if isinstance(value, str):
        if value in _SPECIAL_FLOATS:
            return value
        try:
            value = float(value)
        except ValueError:
            raise bad_request(name, f"expected a number, got {value[:64]!r}") from None
    if not isinstance(value, int | float):
        raise bad_request(name, f"expected a number, got {_kind(value)}")
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise bad_request(name, 'write NaN and infinities as "NaN", "Infinity", "-Infinity"')
    if field.type == FieldDescriptor.TYPE_FLOAT and abs(number) > _FLOAT32_MAX:
        raise bad_request(name, f"{number} is too large for a 32-bit float")
    return number


def _bytes(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise bad_request(name, f"expected a base64 string, got {_kind(value)}")
    padded = value + "=" * (-len(value) % 4)
    try:
        base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(name, "expected base64") from None
    return value


def _enum(field: FieldDescriptor, value: Any, name: str) -> str | int:
    enum = field.enum_type
    if enum is None:  # pragma: no cover - an enum field always has its type
        raise bad_request(name, "has no enum type")
    if isinstance(value, str):
        proto_name = enum_words.value_name(enum, value)
        if proto_name is not None:
            return proto_name
    if isinstance(value, int) and not isinstance(value, bool) and value in enum.values_by_number:
        return value
    names = ", ".join(enum_words.words(enum))
    shown = repr(value[:64]) if isinstance(value, str) else _kind(value)
    raise bad_request(name, f"expected one of {names}; got {shown}")


def _leaf_message(field: FieldDescriptor, value: Any, name: str) -> Any:
    """Well-known types (Timestamp, Struct, wrappers): checked by parsing them."""
    descriptor = message_of(field)
    try:
        json_format.ParseDict(value, message_factory.GetMessageClass(descriptor)())
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        example = _LEAF_EXAMPLES.get(descriptor.full_name)
        if example is not None:
            shown = repr(value[:64]) if isinstance(value, str) else _kind(value)
            raise bad_request(name, f"expected {example}, got {shown}") from None
        raise bad_request(name, f"not a valid {descriptor.name}: {exc}") from None
    return value


def _check_oneofs(message: Descriptor, data: dict[str, Any], where: str) -> None:
    for oneof in message.oneofs:
        given = [f.name for f in oneof.fields if data.get(f.name) is not None]
        if len(given) > 1:
            names = ", ".join(_join(where, n) for n in given)
            problem = f"give only one of them (they are alternatives: {oneof.name})"
            raise GatewayError(
                400,
                "INVALID_ARGUMENT",
                f"{names}: {problem}",
                violations=[FieldViolation(_join(where, n), problem) for n in given],
            )


def _join(where: str, name: str) -> str:
    if not where or where == "body":
        return name
    return f"{where}.{name}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
