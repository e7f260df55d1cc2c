"""Request validation from the contract: protovalidate's rules, enforced by one interceptor.

The request rules live in the protos as ``buf.validate`` annotations (lengths,
ranges, UUIDs, required fields, enums, email format, the project's own
predefined rules in ``cqrs/validation/v1/rules.proto``). This module checks
a parsed request against them with protovalidate (a native extension; a
validator keeps every message's compiled rules, so a check costs a few
microseconds) and reports every broken rule at once:

- INVALID_ARGUMENT whose message names each field
  (``email: must be a valid email address; password: must be at least 8
  characters``) and whose ``google.rpc.BadRequest`` details list them
  (:mod:`service_kit.error_details`), each with its path in proto names
  (``events[0].event_id``) and the rule's id as its reason.

:class:`RequestValidationInterceptor` checks the request of every unary-request
method before its handler runs (after the auth interceptor's checks, which
come first in the server's list). A client-streaming method (AppendStream)
checks each message itself with :func:`check`, since it answers each one.

Business rules (an email that must differ from the current one, a known
event type) stay in the domain and the servicers; only the request's shape
is declared here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import grpc
import protovalidate
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from service_kit import errors
from service_kit.error_details import FieldViolation
from service_kit.errors import ServiceError, invalid_fields
from service_kit.method_wrappers import ParsingHandlerInterceptor, prechecked

__all__ = ["RequestValidationInterceptor", "check", "violations"]

log = logging.getLogger(__name__)

_VALIDATOR: Final = protovalidate.Validator()

if TYPE_CHECKING:
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # the runtime class is not generic; only the stubs are
    _Handler = grpc.RpcMethodHandler


def _path(message: Any, elements: Any) -> tuple[str, str]:
    """The field path in proto names, and the description a oneof needs (or "")."""
    parts: list[str] = []
    current: Descriptor | None = message  # a message Descriptor, descending the path
    oneof_note = ""
    for element in elements:
        name = element.field_name
        text = name
        subscript = element.subscript
        if subscript is not None:
            key = subscript.value
            text += f'["{key}"]' if isinstance(key, str) else f"[{key}]"
        parts.append(text)
        field = current.fields_by_name.get(name) if current is not None else None
        if field is None and current is not None and name in current.oneofs_by_name:
            members = ", ".join(f.name for f in current.oneofs_by_name[name].fields)
            oneof_note = f"give exactly one of {members}"
        current = field.message_type if field is not None else None
    return ".".join(parts), oneof_note


def violations(message: Message) -> list[FieldViolation]:
    """Every rule of the contract ``message`` breaks (empty when it is valid).

    ``ServiceError(INVALID_ARGUMENT)`` when a rule cannot be evaluated on
    this input; a rule that does not compile is a bug in the contract and
    raises (INTERNAL).
    """
    try:
        found = _VALIDATOR.collect_violations(message)
    except protovalidate.EvaluationError as exc:
        raise ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT, f"request: cannot be validated ({exc})"
        ) from None
    out = []
    for violation in found:
        proto = violation.proto
        elements = proto.field.elements if proto.field is not None else ()
        path, oneof_note = _path(message.DESCRIPTOR, elements)
        out.append(FieldViolation(path or "request", oneof_note or proto.message, proto.rule_id))
    return out


def check(message: Message) -> None:
    """Raises INVALID_ARGUMENT listing every broken rule (see :func:`violations`)."""
    found = violations(message)
    if found:
        raise invalid_fields(found)


async def _validated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    try:
        check(request)
    except ServiceError as exc:
        await errors.abort(context, exc)


def _checked(handler: _Handler) -> _Handler:
    """Wraps a unary-request handler so its request is checked before it runs
    (a client-streaming one is left as it is: its servicer checks each message)."""
    return prechecked(handler, _validated) or handler


class RequestValidationInterceptor(ParsingHandlerInterceptor):
    """Checks every unary request against the contract's rules (see the module docstring).

    Health and reflection requests carry no rules; checking them costs a
    lookup and passes.
    """

    def __init__(self) -> None:
        super().__init__(_checked)
