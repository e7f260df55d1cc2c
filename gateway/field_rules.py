"""What the contract says about a request field, as JSON Schema: required, bounds, format.

The request rules are the contract's ``buf.validate`` annotations (enforced
by every service's validation interceptor) and ``google.api.field_behavior``;
the OpenAPI document (:mod:`gateway.openapi`) shows them through this
module, so generated clients learn the same rules the services enforce:

- ``required``: ``(google.api.field_behavior) = REQUIRED`` (a unit test keeps it
  in step with ``(buf.validate.field).required``);
- strings: ``min_len``/``max_len`` -> ``minLength``/``maxLength``; ``email``
  and the project's ``email_address`` -> ``format: email``; ``uuid`` and the
  project's ``canonical_uuid`` -> ``format: uuid`` (the latter with its
  lower-case ``pattern``); ``pattern``;
- integers: ``gte``/``lte``/``gt``/``lt`` -> ``minimum``/``maximum``/exclusive;
- repeated fields: ``min_items``/``max_items`` -> ``minItems``/``maxItems``,
  and the rules of their items.

A rule with no JSON Schema counterpart (a CEL expression, the RFC 3339
range of a time) is enforced all the same; it is just not shown here.
"""

from __future__ import annotations

from typing import Any, Final

from buf.validate import validate_pb2
from cqrs.validation.v1 import rules_pb2
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from gateway.fields import is_repeated

__all__ = ["CANONICAL_UUID_PATTERN", "is_required", "item_bounds", "rules_of", "value_bounds"]

CANONICAL_UUID_PATTERN: Final = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _options(field: FieldDescriptor) -> descriptor_pb2.FieldOptions:
    # Re-parsed so the extensions are read whatever pool the field comes from
    # (as gateway.routes does for the http annotation).
    options = descriptor_pb2.FieldOptions()
    options.ParseFromString(field.GetOptions().SerializeToString())
    return options


def rules_of(field: FieldDescriptor) -> validate_pb2.FieldRules:
    """The field's ``(buf.validate.field)`` rules (empty when it has none)."""
    return _options(field).Extensions[validate_pb2.field]


def is_required(field: FieldDescriptor) -> bool:
    """Whether the contract marks the field REQUIRED (``google.api.field_behavior``)."""
    behaviors = _options(field).Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.FieldBehavior.REQUIRED in behaviors


def _string_bounds(rules: validate_pb2.StringRules) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rules.HasField("min_len"):
        out["minLength"] = rules.min_len
    if rules.HasField("max_len"):
        out["maxLength"] = rules.max_len
    if rules.HasField("len"):
        out["minLength"] = out["maxLength"] = rules.len
    if rules.HasField("pattern"):
        out["pattern"] = rules.pattern
    if rules.HasField("email") and rules.email:
        out["format"] = "email"
    if rules.HasField("uuid") and rules.uuid:
        out["format"] = "uuid"
    if rules.Extensions[rules_pb2.email_address]:
        out["format"] = "email"  # (surrounding whitespace is stripped by the services)
    if rules.Extensions[rules_pb2.canonical_uuid]:
        out["format"] = "uuid"
        out["pattern"] = CANONICAL_UUID_PATTERN
    return out


def _number_bounds(rules: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rules.HasField("gte"):
        out["minimum"] = rules.gte
    if rules.HasField("gt"):
        out["exclusiveMinimum"] = rules.gt
    if rules.HasField("lte"):
        out["maximum"] = rules.lte
    if rules.HasField("lt"):
        out["exclusiveMaximum"] = rules.lt
    return out


_NUMBER_RULES: Final = ("int32", "int64", "uint32", "uint64", "sint32", "sint64", "double", "float")


def _scalar_bounds(rules: validate_pb2.FieldRules) -> dict[str, Any]:
    kind = rules.WhichOneof("type")
    if kind == "string":
        return _string_bounds(rules.string)
    if kind in _NUMBER_RULES:
        return _number_bounds(getattr(rules, kind))
    return {}


def value_bounds(field: FieldDescriptor) -> dict[str, Any]:
    """JSON Schema keywords for one value of the field (an item, for a repeated field)."""
    rules = rules_of(field)
    if is_repeated(field):
        if rules.WhichOneof("type") != "repeated":
            return {}
        return _scalar_bounds(rules.repeated.items)
    return _scalar_bounds(rules)


def item_bounds(field: FieldDescriptor) -> dict[str, Any]:
    """JSON Schema keywords for a repeated field's array (its item counts)."""
    rules = rules_of(field)
    if rules.WhichOneof("type") != "repeated":
        return {}
    out: dict[str, Any] = {}
    if rules.repeated.HasField("min_items"):
        out["minItems"] = rules.repeated.min_items
    if rules.repeated.HasField("max_items"):
        out["maxItems"] = rules.repeated.max_items
    return out
