"""Looking up message fields the way proto3 JSON names them.

A field may be named by its proto name (``old_password``) or its JSON name
(``oldPassword``); both are accepted on input, the proto name is used on
output.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# Well-known types with a JSON form of their own (a string, a number, any
# value): they are leaves, never walked into field by field.
WELL_KNOWN_LEAVES = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Duration",
        "google.protobuf.Empty",
        "google.protobuf.FieldMask",
        "google.protobuf.ListValue",
        "google.protobuf.Struct",
        "google.protobuf.Timestamp",
        "google.protobuf.Value",
        "google.protobuf.BoolValue",
        "google.protobuf.BytesValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int32Value",
        "google.protobuf.Int64Value",
        "google.protobuf.StringValue",
        "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value",
    }
)

INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)


def find_field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """The field called ``name`` (proto or JSON name), or None."""
    field = message.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in message.fields:
        if candidate.json_name == name:
            return candidate
    return None


def is_message(field: FieldDescriptor) -> bool:
    return field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)


def message_of(field: FieldDescriptor) -> Descriptor:
    """The message type of a message field (a ValueError for any other field)."""
    if field.message_type is None:
        raise ValueError(f"{field.full_name} is not a message field")
    return field.message_type


def is_map(field: FieldDescriptor) -> bool:
    return is_message(field) and bool(message_of(field).GetOptions().map_entry)


def is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def is_leaf_message(field: FieldDescriptor) -> bool:
    """A message field whose JSON form is a scalar-like value (Timestamp, ...)."""
    return is_message(field) and message_of(field).full_name in WELL_KNOWN_LEAVES


def is_walkable_message(field: FieldDescriptor) -> bool:
    """A singular message field whose JSON form is an object of its fields."""
    return is_message(field) and not is_map(field) and not is_leaf_message(field)


def resolve_path(message: Descriptor, dotted: str) -> list[FieldDescriptor]:
    """The chain of fields a dotted path names; raises KeyError naming the bad part.

    Every field but the last must be a singular, walkable message.
    """
    chain: list[FieldDescriptor] = []
    current = message
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        field = find_field(current, part)
        if field is None:
            raise KeyError(".".join(parts[: index + 1]))
        chain.append(field)
        if index < len(parts) - 1:
            if is_repeated(field) or not is_walkable_message(field):
                raise KeyError(".".join(parts[: index + 2]))
            current = message_of(field)
    return chain


def query_fields(message: Descriptor, *, max_depth: int = 3) -> list[tuple[str, FieldDescriptor]]:
    """(dotted proto name, field) of every field a query parameter can set.

    Fields of singular nested messages are offered dotted, down to
    ``max_depth`` levels (a recursive message would never end); maps and
    repeated messages cannot be expressed as query parameters.
    """
    return _query_fields(message, "", max_depth)


def _query_fields(
    message: Descriptor, prefix: str, depth: int
) -> list[tuple[str, FieldDescriptor]]:
    out: list[tuple[str, FieldDescriptor]] = []
    for field in message.fields:
        if is_map(field):
            continue
        if is_walkable_message(field):
            if not is_repeated(field) and depth > 0:
                out.extend(_query_fields(message_of(field), f"{prefix}{field.name}.", depth - 1))
            continue
        out.append((prefix + field.name, field))
    return out
