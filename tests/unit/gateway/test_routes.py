"""Routes come from the descriptors alone, and bad annotations stop the start."""

from __future__ import annotations

import pytest
from cqrs.httpopts.v1 import http_options_pb2
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from gateway.routes import RouteError, load_routes
from service_kit import descriptors

from . import synthetic

pytestmark = pytest.mark.unit


def test_every_annotated_rpc_of_the_contract_is_routed() -> None:
    routes = load_routes(descriptors.descriptor_set(), descriptors.pool())
    routed = {r.rpc.full_name for r in routes}
    annotated = set()
    for file in descriptors.descriptor_set().file:
        for service in file.service:
            for method in service.method:
                options = descriptor_pb2.MethodOptions.FromString(
                    method.options.SerializeToString()
                )
                if options.HasExtension(annotations_pb2.http):
                    annotated.add(f"{file.package}.{service.name}.{method.name}")
    assert routed == annotated
    assert "cqrs.command.v1.CommandService.RecordLogin" not in routed
    assert "cqrs.eventstore.v1.EventStoreService.Append" not in routed


def test_success_status_comes_from_the_method_option() -> None:
    routes = {r.rpc.name: r for r in load_routes(descriptors.descriptor_set(), descriptors.pool())}
    assert routes["Register"].success_status == 201
    assert routes["CreateSnapshot"].success_status == 201
    assert routes["Login"].success_status == 200
    assert routes["Subscribe"].rpc.server_streaming
    assert routes["RebuildReadModel"].rpc.server_streaming
    assert routes["GetUser"].rpc.path == "/cqrs.query.v1.QueryService/GetUser"


def test_a_new_annotated_service_is_routed_without_gateway_code() -> None:
    routes = load_routes(synthetic.file_set(), synthetic.pool())
    by_name = {r.rpc.name: r for r in routes}
    assert set(by_name) == {"Get", "List", "Create", "Annotate", "Nested", "Watch"}
    assert by_name["Create"].success_status == 201
    assert by_name["Annotate"].body == "inner"
    assert by_name["Annotate"].response_body == "inner"
    assert by_name["Watch"].template.verb == "watch"
    request = by_name["Get"].rpc.request_class(id="x")
    assert request.SerializeToString()


def _with_rule(
    rule: dict[str, str], *, status: int = 0
) -> tuple[descriptor_pb2.FileDescriptorSet, descriptor_pool.DescriptorPool]:
    """The probe contract (in its own package) whose first RPC has this http rule."""
    probe = synthetic.probe_file("test.broken.v1")
    service = probe.service[0]
    del service.method[1:]
    http = service.method[0].options.Extensions[annotations_pb2.http]
    http.Clear()
    for key, value in rule.items():
        setattr(http, key, value)
    service.method[0].options.Extensions[http_options_pb2.success_status] = status
    fds = synthetic.with_dependencies(probe)
    return fds, synthetic.pool_of(fds)


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"get": "/probes/{nope}"}, "names no field nope"),
        ({"get": "/probes/{tags}"}, "not a singular scalar"),
        ({"get": "/probes/{inner}"}, "not a singular scalar"),
        ({"get": "probes"}, "must start with '/'"),
        ({"post": "/probes", "body": "missing"}, "body names no field missing"),
        ({"post": "/probes/{id}", "body": "id"}, "bound by the path"),
        ({"get": "/probes", "response_body": "missing"}, "response_body names no field"),
    ],
)
def test_a_bad_annotation_is_refused_at_start(rule: dict[str, str], problem: str) -> None:
    fds, pool = _with_rule(rule)
    with pytest.raises(RouteError, match=problem):
        load_routes(fds, pool)


def test_a_non_2xx_success_status_is_refused() -> None:
    fds, pool = _with_rule({"get": "/probes"}, status=302)
    with pytest.raises(RouteError, match="not a 2xx"):
        load_routes(fds, pool)
