"""Creating a gRPC server the same way in every service.

Every server has the standard health service and reflection, binds the
address given (port 0 picks a free port, which tests use), and stops
gracefully: health turns NOT_SERVING first, then in-flight calls get
``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio  # the asyncio servicer; absent from grpc-stubs
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service_kit import reflection

# Generous message limits: a 1,000-event page is far below them.
_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
    # Ping a client that has calls open and has been silent for a minute, and
    # drop it after 20 s without an answer: a long-lived stream (Subscribe,
    # AppendStream) from a host that vanished must not be held forever.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


@dataclass(frozen=True, slots=True)
class Registration:
    """A servicer and the generated function that adds it to a server."""

    service_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: object


@dataclass(slots=True)
class RunningServer:
    """A started server, the port it bound, and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: tuple[str, ...]

    async def stop(self, grace: float = 5.0) -> None:
        """Marks every service NOT_SERVING, then stops with a grace period."""
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


async def start_server(
    address: str,
    registrations: Sequence[Registration],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
) -> RunningServer:
    """Creates, binds and starts a server; raises OSError if it cannot bind."""
    server = grpc.aio.server(interceptors=list(interceptors), options=_OPTIONS)
    names = tuple(r.service_name for r in registrations)
    for r in registrations:
        r.add_to_server(r.servicer, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, [*names, health.SERVICE_NAME])
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind gRPC server to {address}")
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer, names)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a graceful stop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
