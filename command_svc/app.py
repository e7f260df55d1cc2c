"""Wiring of command_svc: settings -> store client, hasher, handler -> gRPC server.

``start`` returns once the server is serving; the admin bootstrap (if
configured) runs in the background (``CommandService.bootstrap``) so a store
that is still starting does not block the command service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import grpc
from cqrs.command.v1 import command_pb2_grpc as pb_grpc
from google.protobuf.message import Message

from command_svc.abuse_limits import CommandLimits
from command_svc.aggregate_cache import AggregateCache
from command_svc.bootstrap_admin import AdminBootstrap, bootstrap_admin
from command_svc.handlers import CommandHandler
from command_svc.idempotency import IdempotencyCache
from command_svc.limits_database import LimitsDatabase
from command_svc.servicer import SERVICE_NAME, CommandServiceServicer
from command_svc.settings import CommandSettings
from command_svc.store_client import StoreClient
from service_kit import readiness as readiness_kit
from service_kit import tracing
from service_kit.auth import service_metadata
from service_kit.client_address import proxy_identity
from service_kit.dependency_errors import Dependency
from service_kit.interceptors import service_interceptors
from service_kit.leader_channel import leader_channel, split_targets
from service_kit.limit_store import keyed_pseudonyms
from service_kit.mail_tokens import MailTokens
from service_kit.observability import setup_process
from service_kit.passwords import PasswordHasher
from service_kit.readiness import Readiness
from service_kit.revocation import RevocationView, revocation_horizon
from service_kit.revocation_feed import RevocationFeed
from service_kit.server import (
    Registration,
    RunningServer,
    check_bindable,
    start_server,
    stop_event_on_signals,
)
from service_kit.settings import SettingsError, environ

__all__ = ["SERVICE_IDENTITY", "CommandService", "main", "serve", "start"]

TRACED_AS = "command_svc"  # the service name its spans carry
log = logging.getLogger("command_svc")

SERVICE_IDENTITY = "command_svc"


@dataclass(slots=True)
class CommandService:
    """A running command service."""

    server: RunningServer
    store: StoreClient
    hasher: PasswordHasher
    handler: CommandHandler
    revocations: RevocationFeed
    readiness: Readiness
    limits_database: LimitsDatabase | None = None
    bootstrap: asyncio.Task[AdminBootstrap] | None = None
    readiness_channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Stops serving (in-flight calls get ``grace`` seconds), then releases resources."""
        if self.bootstrap is not None and not self.bootstrap.done():
            self.bootstrap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.bootstrap
        await self.readiness.stop()
        await self.server.stop(grace)
        await self.revocations.stop()
        await self.store.close()
        for channel in self.readiness_channels:
            await channel.close(None)
        if self.limits_database is not None:
            await self.limits_database.close()
        self.hasher.close()


async def start(settings: CommandSettings) -> CommandService:
    """Connects to the store and serves CommandService on ``settings.listen``."""
    check_bindable(settings.listen, "COMMAND_GRPC_LISTEN")  # before any work: one clear line
    verifier = settings.tokens.verifier()
    identity = service_metadata(settings.tokens.signer(SERVICE_IDENTITY), SERVICE_IDENTITY)
    mail_tokens = MailTokens(settings.tokens.mail_key())
    store = StoreClient.connect(
        settings.store_target, auth_metadata=identity, timeout=settings.store_timeout
    )
    view = RevocationView(horizon=revocation_horizon(settings.tokens.ttl_seconds))
    revocations = RevocationFeed(
        channel=leader_channel(settings.store_target),
        metadata=identity,
        view=view,
        timeout=settings.store_timeout,
    )
    hasher = PasswordHasher(settings.bcrypt_cost)
    handler = CommandHandler(
        store=store,
        hasher=hasher,
        max_attempts=settings.max_attempts,
        cache=AggregateCache(settings.aggregate_cache_size),
        mail_tokens=mail_tokens,
        lifetimes=settings.lifetimes,
    )
    idempotency: IdempotencyCache[Message] = IdempotencyCache(
        capacity=settings.idempotency_capacity, ttl_seconds=settings.idempotency_ttl
    )
    readiness, channels = command_readiness(settings.store_target)
    limits_database: LimitsDatabase | None = None
    try:
        limits = CommandLimits.in_process(settings.limits)
        if settings.limits_database is not None:
            limits_database = LimitsDatabase(
                settings.limits_database, timeout=settings.limits_database_timeout
            )
            await limits_database.ensure_table()
            limits = CommandLimits.shared(
                settings.limits,
                limits_database,
                # The bookings hold keyed hashes of addresses, never the addresses.
                pseudonym=keyed_pseudonyms(settings.tokens.mail_key()),
            )
        server = await start_server(
            settings.listen,
            [
                Registration(
                    SERVICE_NAME,
                    pb_grpc.add_CommandServiceServicer_to_server,
                    CommandServiceServicer(
                        handler,
                        idempotency,
                        command_timeout=settings.command_timeout,
                        limits=limits,
                        is_proxy=proxy_identity(verifier, settings.proxy_services),
                    ),
                ),
                readiness.registration(),
            ],
            interceptors=service_interceptors(
                SERVICE_NAME, verifier, revocations=view, traced_as=TRACED_AS
            ),
            setting="COMMAND_GRPC_LISTEN",
        )
        await readiness.start(server.health)
    except BaseException:
        await store.close()
        for channel in channels:
            await channel.close(None)
        if limits_database is not None:
            await limits_database.close()
        hasher.close()
        raise
    revocations.start()
    # Serve user tokens only once the recent revocations are loaded (bounded:
    # with the store away, such calls answer UNAVAILABLE until it is back).
    if not await view.wait_ready(settings.store_timeout):
        log.warning("command_svc: revoked sessions not loaded yet; the event store is away")
    log.info(
        "command_svc serving gRPC on port %d (store at %s)", server.port, settings.store_target
    )
    service = CommandService(
        server,
        store,
        hasher,
        handler,
        revocations,
        readiness,
        limits_database=limits_database,
        readiness_channels=channels,
    )
    if settings.admin is not None:
        service.bootstrap = asyncio.create_task(
            bootstrap_admin(handler, settings.admin, hasher), name="command_svc.bootstrap_admin"
        )
        service.bootstrap.add_done_callback(_log_bootstrap_failure)
    return service


def command_readiness(store_target: str) -> tuple[Readiness, list[grpc.aio.Channel]]:
    """command_svc's one check: the event store (required: every command needs it),
    at each of its addresses (``host:port[,host:port]``), through channels of its own."""
    channels = [grpc.aio.insecure_channel(t) for t in split_targets(store_target)]
    check = readiness_kit.peer_check(
        "event_store",
        Dependency("event store", f"store_svc at {store_target}"),
        channels,
        required=True,
    )
    return Readiness(SERVICE_NAME, [check]), channels


def _log_bootstrap_failure(task: asyncio.Task[AdminBootstrap]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("admin bootstrap failed", exc_info=task.exception())


async def serve() -> None:
    """Runs until SIGTERM/SIGINT, then stops gracefully."""
    service = await start(CommandSettings.from_env(environ()))
    await stop_event_on_signals().wait()
    await service.stop()
    tracing.shutdown()  # exports the spans still buffered


def main() -> None:
    try:
        setup_process("command_svc", environ())
        asyncio.run(serve())
    except (SettingsError, OSError) as exc:
        # A clear one-line reason, not a traceback: these are operator errors.
        raise SystemExit(f"command_svc: {exc}") from None
