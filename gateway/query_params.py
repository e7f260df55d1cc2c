"""Query parameters (and path variables) → the JSON form of request fields.

A parameter names a field by proto or JSON name, dotted for a field of a
nested message (``filter.status``). Its text becomes the field's JSON value:
integers from decimal text (int64 included), booleans from
``true/false/1/0``, enums by word (``active``), name or number, Timestamps from RFC 3339,
repeated fields from repeated parameters. Text that does not fit the field
is 400 naming the parameter; so is an unknown parameter, a parameter given
twice for a singular field, or one naming a field the path or body carries.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from gateway import enum_words
from gateway.errors import bad_request, check_each
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

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
        *INT64_TYPES,
    }
)
_WRAPPERS = frozenset(
    f"google.protobuf.{kind}Value"
    for kind in ("Bool", "Bytes", "Double", "Float", "Int32", "Int64", "String", "UInt32", "UInt64")
)
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def query_to_json(
    message: Descriptor,
    pairs: Sequence[tuple[str, str]],
    *,
    in_path: Collection[str] = (),
    in_body: Collection[str] = (),
) -> dict[str, Any]:
    """The fields the query parameters give, as JSON keyed by proto names.

    ``in_path``/``in_body`` are the (proto-named) fields carried by the path
    and the body; naming them again in the query is refused, not merged.
    """
    data: dict[str, Any] = {}
    check_each(pairs, lambda pair: _put(data, message, *pair, in_path=in_path, in_body=in_body))
    return data


def _put(
    data: dict[str, Any],
    message: Descriptor,
    name: str,
    text: str,
    *,
    in_path: Collection[str],
    in_body: Collection[str],
) -> None:
    """Sets the field query parameter ``name`` gives; 400 naming it when it cannot."""
    try:
        chain = resolve_path(message, name)
    except KeyError:
        raise bad_request(name, _unknown(message, {*in_path, *in_body})) from None
    proto_path = ".".join(f.name for f in chain)
    top = chain[0].name
    if proto_path in in_path or top in in_path:
        raise bad_request(name, "is given by the path; not accepted as a query parameter")
    if top in in_body:
        raise bad_request(name, "is carried by the request body")
    leaf = chain[-1]
    if is_map(leaf):
        raise bad_request(name, "a map cannot be given as a query parameter")
    if is_walkable_message(leaf):
        raise bad_request(name, f"is a message; give its fields as {name}.<field>")
    value = text_to_json(leaf, text, name)
    parent = data
    for f in chain[:-1]:
        parent = parent.setdefault(f.name, {})
    if is_repeated(leaf):
        parent.setdefault(leaf.name, []).append(value)
    elif leaf.name in parent:
        raise bad_request(name, "given more than once")
    else:
        parent[leaf.name] = value


def text_to_json(field: FieldDescriptor, text: str, name: str) -> Any:
    """The JSON value of a singular field (or one item of a repeated one) from text."""
    if is_leaf_message(field):
        descriptor = message_of(field)
        if descriptor.full_name in _WRAPPERS:  # the JSON form of the wrapped scalar
            return text_to_json(descriptor.fields_by_name["value"], text, name)
        if descriptor.full_name == "google.protobuf.Timestamp":
            # Query strings decode "+" as a space, so an offset written
            # unencoded (…T10:00:00+02:00) arrives as " 02:00"; no valid
            # RFC 3339 time holds a space, so restoring the "+" is safe.
            return text.replace(" ", "+")
        return text  # Timestamp, Duration, FieldMask, Value: their JSON form is text
    kind = field.type
    if kind in _INT_TYPES:
        if not _INTEGER.fullmatch(text):
            raise bad_request(name, f"expected an integer, got {text[:64]!r}")
        return int(text)
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        if text in ("NaN", "Infinity", "-Infinity"):
            return text
        if not _NUMBER.fullmatch(text):
            raise bad_request(name, f"expected a number, got {text[:64]!r}")
        return float(text)
    if kind == FieldDescriptor.TYPE_BOOL:
        value = _BOOLS.get(text.lower())
        if value is None:
            raise bad_request(name, f"expected true or false, got {text[:64]!r}")
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        proto_name = enum_words.value_name(enum, text) if enum is not None else None
        if proto_name is not None:
            return proto_name
        if enum is not None and _INTEGER.fullmatch(text) and int(text) in enum.values_by_number:
            return int(text)
        names = ", ".join(enum_words.words(enum)) if enum is not None else ""
        raise bad_request(name, f"expected one of {names}; got {text[:64]!r}")
    return text  # string, bytes (base64, checked later)


def _unknown(message: Descriptor, excluded: Collection[str]) -> str:
    names = [name for name, _ in query_fields(message)]
    accepted = ", ".join(n for n in names if n.split(".")[0] not in excluded) or "none"
    return f"unknown query parameter; accepted: {accepted}"
