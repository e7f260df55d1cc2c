"""Wiring of query_svc: settings → database, event source, projector → gRPC server.

The only place that chooses adapters: the read model's backend (SQLite or
PostgreSQL), the event source (the store's subscription, or the relay's
Kafka topic with the store's subscription filling gaps), and the command
client. Rebuilds always replay the store (the source of truth; a topic may
have dropped old records). Tests may pass their own ``source`` or ``recorder``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from cqrs.query.v1 import query_pb2_grpc as pb_grpc

import domain
from query_svc.command_client import CommandClient
from query_svc.db import Database
from query_svc.kafka_source import KafkaEventSource, OffsetStore, kafka_consumer_factory
from query_svc.login import LoginRecorder, LoginService
from query_svc.policies import POLICIES, SERVICE_NAME
from query_svc.projector import Projector, Stall
from query_svc.rate_limit import LoginRateLimiter
from query_svc.read_model import ReadModel
from query_svc.readiness import query_readiness
from query_svc.rebuilder import Rebuilder
from query_svc.servicer import QueryServicer, stalled
from query_svc.settings import QuerySettings
from query_svc.source import EventSource
from query_svc.store_source import StoreSubscriptionSource
from service_kit import deadlines, errors
from service_kit.auth import AuthInterceptor, service_metadata
from service_kit.observability import MetricsInterceptor, observe_projector, setup_process
from service_kit.passwords import PasswordHasher
from service_kit.readiness import POLICIES as READINESS_POLICIES
from service_kit.readiness import Readiness
from service_kit.server import Registration, RunningServer, start_server, stop_event_on_signals
from service_kit.settings import SettingsError, environ

log = logging.getLogger("query_svc")

SERVICE_IDENTITY = "query_svc"

errors.register(domain.ValidationError, grpc.StatusCode.INVALID_ARGUMENT)

_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


@dataclass(slots=True)
class QueryService:
    """A running query service: its server, projector and read model."""

    server: RunningServer
    readiness: Readiness
    projector: Projector
    rebuilder: Rebuilder
    database: Database
    read_model: ReadModel
    hasher: PasswordHasher
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Stops serving, then the projector, then closes connections."""
        await self.readiness.stop()
        await self.server.stop(grace)
        await self.projector.stop()
        for channel in self.channels:
            await channel.close(grace=None)
        await self.database.close()
        self.hasher.close()


def _catch_up(
    source: EventSource, projector: Projector, within: float
) -> Callable[[int], Awaitable[bool]]:
    """Waits (bounded) until the projection has applied the store's head as of now.

    True when the projection got past ``seen`` (what a first check was made
    against) up to the head: only then can a second check differ. While the
    projector is known stalled the login cannot be decided: UNAVAILABLE.
    """

    async def catch_up(seen: int) -> bool:
        try:
            head = await source.head_position()
        except Exception:  # the store is away: nothing newer can be known
            log.warning("login catch-up: head position unavailable", exc_info=True)
            return False
        if head <= seen:
            return False  # the first check already saw everything: it stands
        reached = await projector.wait_unless_stalled(head, within=deadlines.budget(within))
        if isinstance(reached, Stall):
            raise stalled(reached, head, what="login")
        return reached

    return catch_up


async def start(
    settings: QuerySettings,
    *,
    source: EventSource | None = None,
    recorder: LoginRecorder | None = None,
) -> QueryService:
    """Creates the schema, starts the projector and serves QueryService."""
    codec = settings.token_codec()
    identity = service_metadata(codec, SERVICE_IDENTITY)
    channels: list[grpc.aio.Channel] = []
    database = Database.from_settings(settings)
    rebuild_source: EventSource
    store_channel: grpc.aio.Channel | None = None
    source_name = ""
    if source is not None:
        rebuild_source = source
    else:
        store_channel = grpc.aio.insecure_channel(settings.store_target, options=_CHANNEL_OPTIONS)
        channels.append(store_channel)
        source = rebuild_source = StoreSubscriptionSource(
            channel=store_channel, metadata=identity, timeout=settings.rpc_timeout_seconds
        )
        source_name = f"the store's subscription at {settings.store_target}"
        if settings.event_source == "kafka":
            source_name = f"Kafka topic {settings.kafka.topic} at {settings.kafka.broker}"
            source = KafkaEventSource(
                consumer_factory=kafka_consumer_factory(
                    broker=settings.kafka.broker, group=settings.kafka.group
                ),
                topic=settings.kafka.topic,
                offsets=OffsetStore(database),
                fallback=rebuild_source,
                gap_timeout=settings.kafka.gap_timeout,
            )
    if recorder is None:
        command_channel = grpc.aio.insecure_channel(settings.command_target)
        channels.append(command_channel)
        recorder = CommandClient(
            channel=command_channel, metadata=identity, timeout=settings.rpc_timeout_seconds
        )

    hasher = PasswordHasher(settings.bcrypt_cost)
    projector: Projector | None = None
    readiness: Readiness | None = None
    try:
        await database.ensure_schema(
            schema=settings.postgres.schema if settings.db_backend == "postgres" else ""
        )
        projector = Projector(
            database=database,
            source=source,
            batch_max=settings.projector_batch_max,
            stall_after=settings.projector_stall_after,
            source_name=source_name,
        )
        await projector.start()
        observe_projector(projector)
        read_model = ReadModel(database)
        rebuilder = Rebuilder(
            database=database,
            projector=projector,
            source=rebuild_source,
            batch_max=settings.projector_batch_max,
        )
        login = LoginService(
            read_model=read_model,
            hasher=hasher,
            codec=codec,
            limiter=LoginRateLimiter(settings.login_limits),
            recorder=recorder,
            catch_up=_catch_up(rebuild_source, projector, settings.wait_timeout_seconds),
            applied_position=lambda: projector.applied_position,
        )
        servicer = QueryServicer(
            read_model=read_model,
            projector=projector,
            login=login,
            rebuilder=rebuilder,
            wait_timeout=settings.wait_timeout_seconds,
            trusted_proxies=settings.trusted_proxies,
            login_timeout=settings.login_timeout_seconds,
        )
        readiness = query_readiness(
            database=database,
            projector=projector,
            store_channel=store_channel,
            store_target=settings.store_target,
        )
        server = await start_server(
            settings.listen,
            [
                Registration(SERVICE_NAME, pb_grpc.add_QueryServiceServicer_to_server, servicer),
                readiness.registration(),
            ],
            interceptors=[
                MetricsInterceptor(),
                AuthInterceptor(codec, {**POLICIES, **READINESS_POLICIES}),
            ],
        )
        await readiness.start(server.health)
    except BaseException:
        if readiness is not None:
            await readiness.stop()
        if projector is not None:
            await projector.stop()
        for channel in channels:
            await channel.close(grace=None)
        await database.close()
        hasher.close()
        raise
    log.info(
        "query_svc serving gRPC on port %d (%s read model, %s event source, "
        "projector at position %d)",
        server.port,
        settings.db_backend,
        settings.event_source,
        projector.applied_position,
    )
    return QueryService(
        server=server,
        readiness=readiness,
        projector=projector,
        rebuilder=rebuilder,
        database=database,
        read_model=read_model,
        hasher=hasher,
        channels=channels,
    )


async def serve() -> None:
    """Runs until SIGTERM/SIGINT, then stops gracefully."""
    service = await start(QuerySettings.from_env(environ()))
    await stop_event_on_signals().wait()
    await service.stop()


def main() -> None:
    try:
        setup_process("query_svc", environ())
        asyncio.run(serve())
    except SettingsError as exc:
        raise SystemExit(f"query_svc: {exc}") from None
