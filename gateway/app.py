"""Wiring of the gateway: descriptors → routes → Starlette app → uvicorn on every port.

``build_app`` reads the descriptor set and builds the route table at once,
every route under ``/v1`` and unprefixed (:mod:`gateway.profiles`; a bad
annotation fails here, at start); the app's lifespan opens and closes
the gRPC channels. ``start`` serves one app on every configured port from a
single uvicorn server (one socket per port) in the running event loop, so
it can run beside the other services in one process; it installs no signal
handlers (``serve`` does, for ``python -m gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from gateway import console, dispatch, docs
from gateway.backends import Backends
from gateway.comments import symbol_comments
from gateway.connection_limits import H11_BUFFER, guarded_protocol
from gateway.cors import Cors
from gateway.health import MetadataSource
from gateway.http_observability import RequestObservability
from gateway.http_server import uvicorn_server
from gateway.in_flight_limits import InFlightLimit
from gateway.openapi import ServerBounds, build_document
from gateway.path_template import parse
from gateway.profiles import served_routes
from gateway.router import Entry, RouteTable
from gateway.routes import load_routes
from gateway.settings import GatewaySettings
from gateway.transcode import dumps
from service_kit import auth, descriptors, tracing
from service_kit.observability import setup_process
from service_kit.server import stop_event_on_signals
from service_kit.settings import SettingsError, environ

log = logging.getLogger("gateway")

SERVICE_NAME = "gateway"


def build_app(
    settings: GatewaySettings, *, service_metadata: MetadataSource | None = None
) -> Starlette:
    """The gateway app; raises RouteError/RouteConflict for a bad annotation.

    ``service_metadata`` gives the gateway's own credentials (for /health's
    event count); by default a service token signed with its own key (``KEYS_DIR``).
    """
    fds = descriptors.descriptor_set()
    served = served_routes(load_routes(fds, descriptors.pool()))
    table: RouteTable[dispatch.Endpoint] = RouteTable(Entry(s.verb, s.template, s) for s in served)
    # The gateway's own routes go through the same table, so an annotation
    # claiming /health is refused at start rather than silently shadowed.
    table.add(Entry("GET", parse("/health"), dispatch.health))
    table.add(Entry("GET", parse("/health/ready"), dispatch.health))
    table.add(Entry("GET", parse("/health/live"), dispatch.liveness))
    table.add(Entry("GET", parse("/openapi.json"), dispatch.openapi))
    table.add(Entry("GET", parse("/metrics"), dispatch.metrics))
    table.add(Entry("GET", console.TEMPLATE, console.AssetHandler(console.load_assets())))
    table.add(
        Entry(
            "GET",
            docs.TEMPLATE,
            console.AssetHandler(docs.docs_assets(), prefix=docs.PREFIX),
        )
    )
    if service_metadata is None:
        signer = settings.tokens.signer(SERVICE_NAME)
        service_metadata = auth.service_metadata(signer, SERVICE_NAME)
    state = dispatch.GatewayState(
        settings=settings,
        table=table,
        openapi=dumps(
            build_document(served, symbol_comments(fds), bounds=ServerBounds.of(settings))
        ),
        service_metadata=service_metadata,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.stopping = asyncio.Event()
        state.backends = Backends({b.service: b.target for b in settings.backends})
        try:
            yield
        finally:
            state.stopping.set()
            backends, state.backends = state.backends, None
            await backends.close()

    app = Starlette(lifespan=lifespan)
    app.state.gateway = state
    # Inside CORS (a browser can read the 429), outside everything that does work.
    app.add_middleware(InFlightLimit, per_client=settings.max_in_flight_per_client)
    if settings.cors_origins:  # no middleware at all when CORS is off
        app.add_middleware(Cors, origins=settings.cors_origins)
    traced = tracing.asgi_middleware(SERVICE_NAME)
    if traced is not None:  # accepts a W3C traceparent; opens the request's span
        middleware, options = traced
        app.add_middleware(middleware, **options)
    app.add_middleware(RequestObservability)  # outermost: metrics see every answer
    # No Starlette routes: every request falls through to the dispatcher,
    # which owns routing (precedence, JSON 404/405) for all paths.
    app.router.default = dispatch.Dispatcher(state)
    return app


@dataclass(slots=True)
class Gateway:
    """A running gateway: its bound ports and how to stop it."""

    app: Starlette
    server: uvicorn.Server
    ports: tuple[int, ...]
    _task: asyncio.Task[None]

    async def stop(self) -> None:
        """Ends open streams, stops accepting, lets in-flight requests finish."""
        self.app.state.gateway.stopping.set()
        self.server.should_exit = True
        await self._task


async def start(settings: GatewaySettings) -> Gateway:
    """Serves the gateway on every configured port; OSError naming a port it cannot bind."""
    app = build_app(settings)
    sockets = _bind_all(settings.host, settings.ports)
    server = uvicorn_server(
        app,
        settings.shutdown_grace,
        {
            "access_log": settings.access_log,
            # Slow and greedy clients are bounded by the protocol (gateway.connection_limits).
            "http": guarded_protocol(
                read_timeout=settings.read_timeout,
                max_connections=settings.max_connections,
                max_per_client=settings.max_connections_per_client,
                parser=settings.http_parser,
            ),
            "h11_max_incomplete_event_size": H11_BUFFER,
        },
    )
    # What Server.serve does, minus its signal capture: in a process that
    # runs several services, SIGTERM belongs to the process, not to uvicorn.
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup(sockets=sockets)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    ports = tuple(sock.getsockname()[1] for sock in sockets)
    task = asyncio.create_task(_run(server, sockets), name="gateway-http")
    log.info("gateway serving HTTP on %s ports %s", settings.host, ", ".join(map(str, ports)))
    return Gateway(app, server, ports, task)


async def _run(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
    await server.main_loop()
    await server.shutdown(sockets=sockets)


def _bind_all(host: str, ports: tuple[int, ...]) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(_bind(host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(f"GATEWAY_HOST={host!r}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"GATEWAY_PORTS: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


async def serve() -> None:
    """Runs until SIGTERM/SIGINT, then stops gracefully."""
    settings = GatewaySettings.from_env(environ())
    gateway = await start(settings)
    await stop_event_on_signals().wait()
    await gateway.stop()
    tracing.shutdown()  # exports the spans still buffered


def main() -> None:
    try:
        setup_process("gateway", environ())
        asyncio.run(serve())
    except (SettingsError, OSError) as exc:
        raise SystemExit(f"gateway: {exc}") from None
