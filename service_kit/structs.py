"""``google.protobuf.Struct`` to plain Python, quickly.

``json_format.MessageToDict`` walks descriptors in pure Python for every
value; event payloads are converted on every append, load and projection,
so this walks the ``Value`` oneof directly. Same result as MessageToDict:
numbers are floats, ``null_value`` and an unset value are ``None``, and a
non-finite number is a ``ValueError`` (JSON cannot carry it).
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

__all__ = ["struct_to_dict"]


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """The Struct as a dict of JSON values (see the module docstring)."""
    return {key: _value(value) for key, value in message.fields.items()}


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number) or math.isnan(number):
            raise ValueError(f"a payload number must be finite, got {number}")
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value(item) for item in value.list_value.values]
    return None
