"""Who may call each method, as the contract says: the ``cqrs.access.v1`` options.

Every RPC of the project carries ``option (cqrs.access.v1.access) = {level: ...}``
(``protos/cqrs/access/v1/access.proto``); a request field may add
``(cqrs.access.v1.field_access)``, a level needed to set it at all (Subscribe's
``include_secrets``). This module turns them into the :class:`~service_kit.auth.Access`
table the :class:`~service_kit.auth.AuthInterceptor` enforces, once, at start.

Invariants: :func:`policies` returns an entry for every method of the services
named and raises :class:`AccessRuleError` instead when a method has no rule,
an unknown level, or an owner rule whose ``owner_field`` is not a string field
of the request (a mistake in the contract stops the service at start, and the
unit test over the descriptors stops the build before that). The interceptor
itself refuses any method absent from its table (deny by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cqrs.access.v1 import access_pb2
from google.protobuf import descriptor_pb2

from service_kit import descriptors
from service_kit.auth import Access

__all__ = ["AccessRuleError", "MethodRule", "method_rules", "policies", "rule_of"]

_KINDS: Final[Mapping[int, str]] = MappingProxyType(
    {
        access_pb2.ACCESS_LEVEL_PUBLIC: "public",
        access_pb2.ACCESS_LEVEL_AUTHENTICATED: "authenticated",
        access_pb2.ACCESS_LEVEL_OWNER: "owner",
        access_pb2.ACCESS_LEVEL_ADMIN: "admin",
        access_pb2.ACCESS_LEVEL_SERVICE: "service",
    }
)


PROJECT_PACKAGE: Final = "cqrs."
"""Services of packages under this prefix are the project's: each method needs a rule."""


class AccessRuleError(ValueError):
    """A method of the contract without a usable access rule."""


@dataclass(frozen=True, slots=True)
class MethodRule:
    """One method's rule as the contract states it (see :func:`method_rules`)."""

    service: str
    method: str
    access: Access

    @property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/cqrs.query.v1.QueryService/GetUser``."""
        return f"/{self.service}/{self.method}"


def _options(proto: descriptor_pb2.MethodDescriptorProto) -> descriptor_pb2.MethodOptions:
    # Re-parsed so the extension is read whatever the set was parsed with;
    # importing access_pb2 above registers it (as gateway.routes does for http).
    options = descriptor_pb2.MethodOptions()
    options.ParseFromString(proto.options.SerializeToString())
    return options


def _field_level(field: descriptor_pb2.FieldDescriptorProto) -> int:
    options = descriptor_pb2.FieldOptions()
    options.ParseFromString(field.options.SerializeToString())
    return options.Extensions[access_pb2.field_access]


def _messages(
    prefix: str, messages: Iterable[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for message in messages:
        name = f"{prefix}.{message.name}"
        yield name, message
        yield from _messages(name, message.nested_type)


def _all_messages() -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}
    for file in descriptors.descriptor_set().file:
        found.update(_messages(f".{file.package}" if file.package else "", file.message_type))
    return found


def rule_of(
    name: str, proto: descriptor_pb2.MethodDescriptorProto, request: descriptor_pb2.DescriptorProto
) -> Access:
    """The rule of method ``name`` (``proto``), whose request message is ``request``."""
    options = _options(proto)
    if not options.HasExtension(access_pb2.access):
        raise AccessRuleError(
            f"{name}: no (cqrs.access.v1.access) option; every RPC must say who may call it"
        )
    rule = options.Extensions[access_pb2.access]
    kind = _KINDS.get(rule.level)
    if kind is None:
        raise AccessRuleError(f"{name}: access level {rule.level} is not a level")
    fields = {f.name: f for f in request.field}
    if kind == "owner":
        owner = fields.get(rule.owner_field)
        if owner is None or owner.type != descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
            raise AccessRuleError(
                f"{name}: owner_field {rule.owner_field!r} is not a string field of {request.name}"
            )
        if proto.client_streaming:
            raise AccessRuleError(f"{name}: an owner rule needs a single request message")
        access = Access.owner(rule.owner_field)
    elif rule.owner_field:
        raise AccessRuleError(f"{name}: owner_field is set but the level is {kind}")
    else:
        access = Access(kind)
    guarded = []
    for field in request.field:
        level = _field_level(field)
        if not level:
            continue
        field_kind = _KINDS.get(level)
        if field_kind is None or field_kind == "owner":
            raise AccessRuleError(f"{name}: field {field.name} has field_access {level}")
        guarded.append((field.name, field_kind))
    if guarded and proto.client_streaming:
        raise AccessRuleError(f"{name}: field_access needs a single request message")
    return access.guarding(tuple(guarded)) if guarded else access


def method_rules() -> tuple[MethodRule, ...]:
    """The rule of every method of the project's services (``cqrs.*`` packages).

    ``AccessRuleError`` if any method lacks a usable rule.
    """
    messages = _all_messages()
    rules = []
    for file in descriptors.descriptor_set().file:
        if not file.package.startswith(PROJECT_PACKAGE):
            continue
        for service in file.service:
            service_name = f"{file.package}.{service.name}"
            for method in service.method:
                name = f"{service_name}.{method.name}"
                request = messages[method.input_type]
                rules.append(MethodRule(service_name, method.name, rule_of(name, method, request)))
    return tuple(rules)


def policies(*services: str) -> dict[str, Access]:
    """The interceptor's table for these services: full method path -> Access.

    ``AccessRuleError`` when a service is not in the contract or any of its
    methods lacks a usable rule.
    """
    rules = [r for r in method_rules() if r.service in services]
    missing = set(services) - {r.service for r in rules}
    if missing:
        raise AccessRuleError(f"no such service in the contract: {', '.join(sorted(missing))}")
    return {r.path: r.access for r in rules}
