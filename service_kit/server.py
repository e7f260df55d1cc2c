"""Creating a gRPC server the same way in every service.

Every server has the standard health service and reflection, binds the
address given (port 0 picks a free port, which tests use), and stops
gracefully: health turns NOT_SERVING first, then in-flight calls get
``grace`` seconds.
"""

from __future__ import annotations

import asyncio
import signal
import socket
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
    # Clients of a leader and its standby ping every few seconds while calls are
    # open, to notice a paused peer (service_kit.leader_channel): allow it, rather
    # than answer GOAWAY "too many pings" on a quiet Subscribe stream.
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
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
    setting: str = "",
) -> RunningServer:
    """Creates, binds and starts a server; raises OSError if it cannot bind, in
    one line naming the address, the ``setting`` it came from and why."""
    check_bindable(address, setting)
    server = grpc.aio.server(interceptors=list(interceptors), options=_OPTIONS)
    names = tuple(r.service_name for r in registrations)
    for r in registrations:
        r.add_to_server(r.servicer, server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, [*names, health.SERVICE_NAME])
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # grpc's own words add nothing to check_bindable's
        port = 0
    if port == 0:
        raise OSError(_cannot_listen(address, setting, "the address cannot be bound"))
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer, names)


def _cannot_listen(address: str, setting: str, why: str) -> str:
    named = f" ({setting})" if setting else ""
    return f"cannot listen on {address}{named}: {why}"


def check_bindable(address: str, setting: str = "") -> None:
    """Raises a one-line OSError when ``address`` (``host:port``) cannot be bound
    now (an unknown host, a busy port), before gRPC tries and logs its own error."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise OSError(_cannot_listen(address, setting, f"unknown host ({exc})")) from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise OSError(_cannot_listen(address, setting, exc.strerror or str(exc))) from None


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a graceful stop."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event
