"""A contract written for the tests: every field kind the gateway transcodes.

Built as a FileDescriptorProto (no .proto file, no codegen) and loaded with
its dependencies into a private pool, exactly as the gateway loads the real
descriptor set; so it also shows that a new annotated RPC needs no gateway
code.
"""

from __future__ import annotations

import functools

from cqrs.httpopts.v1 import http_options_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2

from service_kit import descriptors

PACKAGE = "test.gateway.v1"
SERVICE = f"{PACKAGE}.ProbeService"

F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str = "",
    oneof_index: int | None = None,
) -> F:
    field = F(name=name, number=number, type=kind)  # type: ignore[arg-type]
    field.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name
    if oneof_index is not None:
        field.oneof_index = oneof_index
    field.json_name = _camel(name)
    return field


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _method(
    package: str,
    name: str,
    request: str,
    response: str,
    *,
    rule: dict[str, str],
    status: int = 0,
    server_streaming: bool = False,
) -> descriptor_pb2.MethodDescriptorProto:
    method = descriptor_pb2.MethodDescriptorProto(
        name=name,
        input_type=f".{package}.{request}",
        output_type=f".{package}.{response}",
        server_streaming=server_streaming,
    )
    http = method.options.Extensions[annotations_pb2.http]
    for key, value in rule.items():
        setattr(http, key, value)
    if status:
        method.options.Extensions[http_options_pb2.success_status] = status
    return method


def probe_file(package: str = PACKAGE) -> descriptor_pb2.FileDescriptorProto:
    """``test/gateway/v1/probe.proto`` (or the same contract in another package)."""
    PACKAGE = package
    file = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/probe.proto",
        package=package,
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
            "google/api/annotations.proto",
            "cqrs/httpopts/v1/http_options.proto",
        ],
    )
    color = file.enum_type.add(name="Color")
    for number, value in enumerate(("COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_BLUE")):
        color.value.add(name=value, number=number)

    inner = file.message_type.add(name="Inner")
    inner.field.extend([_field("note", 1, F.TYPE_STRING), _field("level", 2, F.TYPE_INT32)])

    probe = file.message_type.add(name="Probe")
    entry = probe.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    entry.field.extend([_field("key", 1, F.TYPE_STRING), _field("value", 2, F.TYPE_INT32)])
    probe.oneof_decl.add(name="choice")
    probe.field.extend(
        [
            _field("id", 1, F.TYPE_STRING),
            _field("tags", 2, F.TYPE_STRING, repeated=True),
            _field("inner", 3, F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Inner"),
            _field(
                "counts",
                4,
                F.TYPE_MESSAGE,
                repeated=True,
                type_name=f".{PACKAGE}.Probe.CountsEntry",
            ),
            _field("big", 5, F.TYPE_INT64),
            _field("small", 6, F.TYPE_UINT32),
            _field("flag", 7, F.TYPE_BOOL),
            _field("ratio", 8, F.TYPE_DOUBLE),
            _field("blob", 9, F.TYPE_BYTES),
            _field("at", 10, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"),
            _field("maybe", 11, F.TYPE_MESSAGE, type_name=".google.protobuf.Int32Value"),
            _field("color", 12, F.TYPE_ENUM, type_name=f".{PACKAGE}.Color"),
            _field("colors", 13, F.TYPE_ENUM, repeated=True, type_name=f".{PACKAGE}.Color"),
            _field("left", 14, F.TYPE_STRING, oneof_index=0),
            _field("right", 15, F.TYPE_INT32, oneof_index=0),
            _field("bigs", 16, F.TYPE_INT64, repeated=True),
            _field("items", 17, F.TYPE_MESSAGE, repeated=True, type_name=f".{PACKAGE}.Inner"),
        ]
    )
    file.service.add(
        name="ProbeService",
        method=[
            _method(package, "Get", "Probe", "Probe", rule={"get": "/probes/{id}"}),
            _method(package, "List", "Probe", "Probe", rule={"get": "/probes"}),
            _method(
                package,
                "Create",
                "Probe",
                "Probe",
                rule={"post": "/probes", "body": "*"},
                status=201,
            ),
            _method(
                package,
                "Annotate",
                "Probe",
                "Probe",
                rule={"put": "/probes/{id}/inner", "body": "inner", "response_body": "inner"},
            ),
            _method(package, "Nested", "Probe", "Probe", rule={"get": "/nested/{inner.note}"}),
            _method(
                package,
                "Watch",
                "Probe",
                "Probe",
                rule={"get": "/probes:watch"},
                server_streaming=True,
            ),
            _method(package, "Hidden", "Probe", "Probe", rule={}),
        ],
    )
    # An RPC without an annotation is not routed.
    file.service[0].method[-1].ClearField("options")
    return file


@functools.cache
def file_set() -> descriptor_pb2.FileDescriptorSet:
    """The probe file and everything it imports (from the project's set)."""
    return with_dependencies(probe_file())


def with_dependencies(
    probe: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorSet:
    """A set holding ``probe`` after the files it imports."""
    wanted = {
        "google/protobuf/descriptor.proto",
        "google/protobuf/timestamp.proto",
        "google/api/http.proto",
        "google/api/annotations.proto",
        "cqrs/httpopts/v1/http_options.proto",
    }
    files = [f for f in descriptors.descriptor_set().file if f.name in wanted]
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    files.insert(1, wrappers)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.extend([*files, probe])
    return fds


def pool_of(fds: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    p = descriptor_pool.DescriptorPool()
    for file in fds.file:
        p.Add(file)
    return p


@functools.cache
def pool() -> descriptor_pool.DescriptorPool:
    return pool_of(file_set())
