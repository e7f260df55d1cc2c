"""Starts store_svc, command_svc, query_svc and the gateway in one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import command_svc.app
import gateway.app
import query_svc.app
import store_svc.app
from command_svc.bootstrap_admin import AdminBootstrap
from command_svc.settings import CommandSettings
from gateway.settings import GatewaySettings
from query_svc.settings import QuerySettings
from store_svc.settings import StoreSettings

log = logging.getLogger("bootstrap")


class _Stoppable(Protocol):
    async def stop(self) -> None: ...


@dataclass(slots=True)
class System:
    """The running services, stopped in reverse order of start."""

    store: store_svc.app.StoreService
    command: command_svc.app.CommandService | None = None
    query: query_svc.app.QueryService | None = None
    gateway: gateway.app.Gateway | None = None
    ports: dict[str, list[int]] = field(default_factory=dict)

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        if self.query is not None:
            await self.query.stop()
        if self.command is not None:
            await self.command.stop()
        await self.store.stop()


# Where each service is reached (a *_TARGET variable) from where it listens.
_FOLLOWS = (
    ("STORE_GRPC_TARGET", "store"),
    ("COMMAND_GRPC_TARGET", "command"),
    ("QUERY_GRPC_TARGET", "query"),
)


def following(env: Mapping[str, str], ports: Mapping[str, int]) -> dict[str, str]:
    """``env`` with each unset ``*_TARGET`` pointed at the port its service bound
    in this process (on loopback), so moving ``STORE_GRPC_LISTEN`` (or listening
    on port 0) moves the callers too. A target the user set is kept."""
    out = dict(env)
    for variable, service in _FOLLOWS:
        if service in ports and not env.get(variable):
            out[variable] = f"127.0.0.1:{ports[service]}"
    return out


async def start(env: Mapping[str, str]) -> System:
    """Parses every service's settings first (so a bad value stops nothing
    half-started), then starts the services in dependency order, each calling
    the others where they really listen (:func:`following`)."""
    StoreSettings.from_env(env)
    CommandSettings.from_env(env)
    QuerySettings.from_env(env)
    GatewaySettings.from_env(env)
    system = System(store=await store_svc.app.start(StoreSettings.from_env(env)))
    try:
        bound = {"store": system.store.server.port}
        system.command = await command_svc.app.start(
            CommandSettings.from_env(following(env, bound))
        )
        bound["command"] = system.command.server.port
        system.query = await query_svc.app.start(QuerySettings.from_env(following(env, bound)))
        bound["query"] = system.query.server.port
        system.gateway = await gateway.app.start(GatewaySettings.from_env(following(env, bound)))
    except BaseException:
        await system.stop()
        raise
    system.ports = {
        "store (gRPC)": [system.store.server.port],
        "command (gRPC)": [system.command.server.port],
        "query (gRPC)": [system.query.server.port],
        "gateway (HTTP)": list(system.gateway.ports),
    }
    return system


async def wait_admin(system: System) -> AdminBootstrap | None:
    """Waits until the admin bootstrap (if any) has finished; its outcome, for the banner."""
    if system.command is not None and system.command.bootstrap is not None:
        try:
            return await asyncio.wait_for(asyncio.shield(system.command.bootstrap), 30)
        except (TimeoutError, Exception):  # the banner must not fail the run
            log.warning("admin bootstrap has not finished; see the log")
    return None
