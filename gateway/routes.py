"""The route table, built at start from the compiled descriptor set.

Every RPC with a ``google.api.http`` annotation (and each of its
``additional_bindings``) becomes one route; ``cqrs.httpopts.v1.success_status``
sets its success status (default 200). No route is written by hand: an
annotated RPC added to the contract is served after a restart.

A wrong annotation (a path variable or body naming no field, a status that
is not 2xx, two routes answering the same requests) stops the gateway at
start instead of failing on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cqrs.httpopts.v1 import http_options_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from gateway.fields import is_message, is_repeated, resolve_path
from gateway.path_template import PathTemplate, TemplateError, parse
from gateway.router import Entry, RouteTable

log = logging.getLogger(__name__)

_VERBS = ("get", "put", "post", "delete", "patch")


class RouteError(ValueError):
    """An http annotation the gateway cannot serve."""


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A gRPC method as the gateway calls it: generic path and message classes."""

    service: str
    name: str
    input: Descriptor
    output: Descriptor
    server_streaming: bool
    request_class: type[Message] = field(repr=False)
    response_class: type[Message] = field(repr=False)

    @property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/cqrs.query.v1.QueryService/GetUser``."""
        return f"/{self.service}/{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.name}"


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One HTTP binding of an RPC.

    Invariants: every template variable names a singular scalar field of
    the request; ``body`` is "", "*" or a top-level request field not bound
    by the path; ``success_status`` is 2xx.
    """

    verb: str
    template: PathTemplate
    body: str
    response_body: str
    success_status: int
    rpc: RpcMethod

    @property
    def path_fields(self) -> tuple[str, ...]:
        return self.template.field_paths


def load_routes(
    fds: descriptor_pb2.FileDescriptorSet, pool: descriptor_pool.DescriptorPool
) -> list[HttpRoute]:
    """Every annotated binding of every service in the set, in file order."""
    routes: list[HttpRoute] = []
    for file_proto in fds.file:
        for service_proto in file_proto.service:
            service = pool.FindServiceByName(_qualified(file_proto.package, service_proto.name))
            for method_proto in service_proto.method:
                routes.extend(_method_routes(service.full_name, method_proto, pool))
    return routes


def build_table(routes: list[HttpRoute]) -> RouteTable[HttpRoute]:
    """The route table; raises RouteConflict if two routes overlap exactly."""
    return RouteTable(Entry(r.verb, r.template, r) for r in routes)


def _method_routes(
    service: str, method_proto: descriptor_pb2.MethodDescriptorProto, pool: Any
) -> Iterator[HttpRoute]:
    options = _method_options(method_proto)
    if not options.HasExtension(annotations_pb2.http):
        return
    name = f"{service}.{method_proto.name}"
    if method_proto.client_streaming:
        log.warning("%s streams requests; HTTP/JSON cannot carry that, not routed", name)
        return
    status = options.Extensions[http_options_pb2.success_status] or 200
    if not 200 <= status <= 299:
        raise RouteError(f"{name}: success_status {status} is not a 2xx status")
    method = pool.FindMethodByName(name)
    rpc = RpcMethod(
        service=service,
        name=method_proto.name,
        input=method.input_type,
        output=method.output_type,
        server_streaming=method_proto.server_streaming,
        request_class=message_factory.GetMessageClass(method.input_type),
        response_class=message_factory.GetMessageClass(method.output_type),
    )
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    for binding in (rule, *rule.additional_bindings):
        yield _route(rpc, binding, status)


def _method_options(method_proto: descriptor_pb2.MethodDescriptorProto) -> Any:
    # Re-parsed so the extensions are read whatever was imported when the set
    # was parsed; importing annotations_pb2/http_options_pb2 above registers them.
    return descriptor_pb2.MethodOptions.FromString(method_proto.options.SerializeToString())


def _route(rpc: RpcMethod, rule: http_pb2.HttpRule, status: int) -> HttpRoute:
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        verb, path = pattern.upper(), str(getattr(rule, pattern))
    elif pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        raise RouteError(f"{rpc.full_name}: http rule without a verb and path")
    try:
        template = parse(path)
    except TemplateError as exc:
        raise RouteError(f"{rpc.full_name}: {exc}") from None
    for field_path in template.field_paths:
        _check_path_field(rpc, field_path)
    if rule.body not in ("", "*"):
        _check_top_level(rpc, rpc.input, rule.body, "body")
        if rule.body in {p.split(".")[0] for p in template.field_paths}:
            raise RouteError(f"{rpc.full_name}: body field {rule.body} is bound by the path")
    if rule.response_body:
        _check_top_level(rpc, rpc.output, rule.response_body, "response_body")
    return HttpRoute(verb, template, rule.body, rule.response_body, status, rpc)


def _check_path_field(rpc: RpcMethod, field_path: str) -> None:
    try:
        leaf = resolve_path(rpc.input, field_path)[-1]
    except KeyError as exc:
        raise RouteError(f"{rpc.full_name}: path variable names no field {exc.args[0]}") from None
    if is_repeated(leaf) or is_message(leaf):
        raise RouteError(f"{rpc.full_name}: path variable {field_path} is not a singular scalar")


def _check_top_level(rpc: RpcMethod, message: Descriptor, name: str, what: str) -> None:
    found: FieldDescriptor | None = message.fields_by_name.get(name)
    if found is None:
        raise RouteError(f"{rpc.full_name}: {what} names no field {name} of {message.full_name}")


def _qualified(package: str, name: str) -> str:
    return f"{package}.{name}" if package else name
