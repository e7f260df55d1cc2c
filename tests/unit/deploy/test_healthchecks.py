"""The health probes of docker-compose.yml, run for real against local servers.

Each gRPC probe is run (with the venv's python, as the image's) against a
server started by ``service_kit.server.start_server`` — the same health
registration the services use — on a free loopback port: it must pass while
the service is SERVING and fail once it is NOT_SERVING or gone. The gateway's
probe is run against a stand-in ``/health/ready`` (readiness) answering 200,
then 503.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Final

import grpc
import pytest
from grpc_health.v1 import health_pb2

from command_svc.servicer import SERVICE_NAME as COMMAND_SERVICE
from query_svc.servicer import SERVICE_NAME as QUERY_SERVICE
from service_kit.server import Registration, start_server
from store_svc.servicer import SERVICE_NAME as STORE_SERVICE
from tests.unit.deploy import compose_support as cs

pytestmark = pytest.mark.unit

GRPC_SERVICES: Final[Mapping[str, tuple[str, int]]] = {
    "store-svc": (STORE_SERVICE, 9090),
    "command-svc": (COMMAND_SERVICE, 9091),
    "query-svc": (QUERY_SERVICE, 9095),
}


def _probe(service_name: str) -> list[str]:
    """The service's health check as an argv for this machine (``python`` -> the venv's)."""
    service = cs.services(cs.load_interpolated())[service_name]
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD", "exec form, no shell needed"
    assert test[1] == "python"
    return [sys.executable, *test[2:]]


async def _run(argv: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


def _no_servicer(servicer: Any, server: grpc.aio.Server) -> None:
    """Health only: the probe never calls the service itself."""


@pytest.mark.parametrize("service_name", GRPC_SERVICES)
async def test_grpc_probe_follows_the_serving_status(service_name: str) -> None:
    grpc_name, port = GRPC_SERVICES[service_name]
    argv = _probe(service_name)
    assert f"service='{grpc_name}'" in argv[-1], "the probe must ask for this service by name"
    running = await start_server("127.0.0.1:0", [Registration(grpc_name, _no_servicer, None)])
    try:
        local = [a.replace(f"127.0.0.1:{port}'", f"127.0.0.1:{running.port}'") for a in argv]
        assert local != argv
        assert await _run(local) == 0
        await running.health.set(grpc_name, health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await _run(local) != 0
    finally:
        await running.stop(grace=0)
    assert await _run(local) != 0, "nothing listening must count as unhealthy"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/ready" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def http_health() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_gateway_probe_passes_on_200_only(http_health: HTTPServer) -> None:
    argv = _probe("gateway")
    port = http_health.server_address[1]
    local = [a.replace("http://127.0.0.1:8088/", f"http://127.0.0.1:{port}/") for a in argv]
    assert local != argv
    _Health.status = 200
    assert await _run(local) == 0
    _Health.status = 503
    try:
        assert await _run(local) != 0
    finally:
        _Health.status = 200
