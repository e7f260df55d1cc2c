"""Wiring of query_svc: settings → database, event source, projector → gRPC server.

The only place that chooses adapters: the read model's backend (SQLite or
PostgreSQL), the event source (the store's subscription, or the relay's
Kafka topic with the store's subscription filling gaps), and the command
client. Rebuilds always replay the store (the source of truth; a topic may
have dropped old records). Tests may pass their own ``source`` or ``commands``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from cqrs.query.v1 import query_pb2_grpc as pb_grpc

import domain
from pii.codec import PayloadCodec
from pii.keystore import WrongMasterKey
from query_svc.command_client import CommandClient
from query_svc.db import Database
from query_svc.kafka_source import KafkaEventSource, OffsetStore, kafka_consumer_factory
from query_svc.login import LoginService
from query_svc.login_attempts import LoginAttempts
from query_svc.mail_transport import transport_for
from query_svc.mailer import Mailer
from query_svc.password_resets import PasswordResets
from query_svc.projector import Projector, Stall
from query_svc.read_model import ReadModel
from query_svc.readiness import query_readiness
from query_svc.rebuilder import Rebuilder
from query_svc.servicer import SERVICE_NAME, QueryServicer, stalled
from query_svc.session_service import SessionService
from query_svc.session_tables import SESSION_TABLES
from query_svc.sessions import SessionStore
from query_svc.settings import QuerySettings
from query_svc.source import EventSource
from query_svc.store_source import StoreSubscriptionSource
from service_kit import deadlines, errors, tracing
from service_kit.auth import service_metadata
from service_kit.client_address import proxy_identity
from service_kit.interceptors import service_interceptors
from service_kit.leader_channel import leader_channel
from service_kit.limit_store import LIMIT_METADATA, SqlRequestLimiter, keyed_pseudonyms
from service_kit.mail_tokens import MailTokens
from service_kit.observability import (
    LIMIT_REFUSALS,
    LOGIN_FAILURES,
    observe_projector,
    setup_process,
)
from service_kit.passwords import PasswordHasher
from service_kit.readiness import Readiness
from service_kit.revocation import RevocationView, revocation_horizon
from service_kit.revocation_feed import RevocationFeed
from service_kit.schema_versions import SchemaMismatch
from service_kit.server import (
    Registration,
    RunningServer,
    check_bindable,
    start_server,
    stop_event_on_signals,
)
from service_kit.settings import SettingsError, environ

TRACED_AS = "query_svc"  # the service name its spans carry
log = logging.getLogger("query_svc")

SERVICE_IDENTITY = "query_svc"

errors.register(domain.ValidationError, grpc.StatusCode.INVALID_ARGUMENT)

_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]


@dataclass(slots=True)
class QueryService:
    """A running query service: its server, projector and read model."""

    server: RunningServer
    projector: Projector
    rebuilder: Rebuilder
    database: Database
    read_model: ReadModel
    hasher: PasswordHasher
    mailer: Mailer
    revocations: RevocationFeed
    resets: PasswordResets
    readiness: Readiness
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Stops serving, then the projector, mailer and feeds, then closes connections."""
        await self.readiness.stop()
        await self.server.stop(grace)
        await self.resets.stop()
        await self.mailer.stop()
        await self.revocations.stop()
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
    commands: CommandClient | None = None,
) -> QueryService:
    """Creates the schema, starts the projector and serves QueryService."""
    check_bindable(settings.listen, "QUERY_GRPC_LISTEN")  # before any work: one clear line
    trusted = settings.tokens.trusted()
    verifier = settings.tokens.verifier(trusted)
    signer = settings.tokens.signer(SERVICE_IDENTITY)  # user tokens and our own identity
    mail_tokens = MailTokens(settings.tokens.mail_key())
    # The limits' bookings hold keyed hashes of addresses, never the addresses.
    pseudonym = keyed_pseudonyms(settings.tokens.mail_key())
    identity = service_metadata(signer, SERVICE_IDENTITY)
    channels: list[grpc.aio.Channel] = []
    database = Database.from_settings(settings)
    # One address, or a leader and its standby (followed: service_kit.leader_channel).
    store_channel = leader_channel(settings.store_target, options=_CHANNEL_OPTIONS)
    channels.append(store_channel)
    rebuild_source: EventSource
    source_name = ""
    if source is not None:
        rebuild_source = source
    else:
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
                # The topic carries personal fields sealed: open them with the
                # same key store as the store (settings.pii names it).
                codec=PayloadCodec(settings.pii_settings.open_keys()),
            )
    if commands is None:
        command_channel = grpc.aio.insecure_channel(settings.command_target)
        channels.append(command_channel)
        commands = CommandClient(
            channel=command_channel, metadata=identity, timeout=settings.rpc_timeout_seconds
        )

    hasher = PasswordHasher(settings.bcrypt_cost)
    view = RevocationView(horizon=revocation_horizon(settings.tokens.ttl_seconds))
    revocations = RevocationFeed(
        channel=store_channel, metadata=identity, view=view, timeout=settings.rpc_timeout_seconds
    )
    projector: Projector | None = None
    mailer: Mailer | None = None
    resets: PasswordResets | None = None
    readiness: Readiness | None = None
    try:
        await database.ensure_schema(
            schema=settings.postgres.schema if settings.db_backend == "postgres" else "",
            also=[SESSION_TABLES.metadata, LIMIT_METADATA],
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
        # Exported from zero, so rates and alerts see these series before the first event.
        LOGIN_FAILURES.labels("invalid_credentials")
        for limit in ("login.pair", "login.email", "login.address", "login.success"):
            LIMIT_REFUSALS.labels(limit)  # counted by service_kit.refusals' hook
        read_model = ReadModel(database)
        rebuilder = Rebuilder(
            database=database,
            projector=projector,
            source=rebuild_source,
            batch_max=settings.projector_batch_max,
        )
        catch_up = _catch_up(rebuild_source, projector, settings.wait_timeout_seconds)
        sessions = SessionStore(
            database, refresh_ttl=timedelta(seconds=settings.refresh_ttl_seconds)
        )
        login = LoginService(
            read_model=read_model,
            hasher=hasher,
            codec=signer,
            sessions=sessions,
            attempts=LoginAttempts(database, settings.login_limits, pseudonym=pseudonym),
            recorder=commands,
            catch_up=catch_up,
            applied_position=lambda: projector.applied_position,
        )
        limits = settings.reset_limits
        resets = PasswordResets(
            read_model=read_model,
            issuer=commands,
            per_email=SqlRequestLimiter(
                database,
                scope="reset.email",
                pseudonym=pseudonym,
                limit=limits.max_per_email,
                window=float(limits.window_seconds),
            ),
            per_address=SqlRequestLimiter(
                database,
                scope="reset.address",
                pseudonym=pseudonym,
                limit=limits.max_per_address,
                window=float(limits.window_seconds),
            ),
            catch_up=catch_up,
            applied_position=lambda: projector.applied_position,
        )
        servicer = QueryServicer(
            read_model=read_model,
            projector=projector,
            login=login,
            rebuilder=rebuilder,
            wait_timeout=settings.wait_timeout_seconds,
            trusted_proxies=settings.trusted_proxies,
            is_proxy=proxy_identity(verifier, settings.proxy_services),
            sessions=SessionService(
                sessions=sessions, auth=read_model, signer=signer, revoker=commands, view=view
            ),
            resets=resets,
            # The JWK Set is read fresh (a stat; a load only when the file changed):
            # a token signed with a just-rotated key must find its key published.
            trusted_keys=trusted.reload_now,
            token_ttl=settings.tokens.ttl_seconds,
            login_timeout=settings.login_timeout_seconds,
        )
        readiness = query_readiness(
            database=database,
            projector=projector,
            store_channel=store_channel,
            store_target=settings.store_target,
        )
        mailer = Mailer(
            database=database,
            channel=store_channel,
            metadata=identity,
            transport=transport_for(settings.mail.smtp),
            tokens=mail_tokens,
            settings=settings.mail,
            timeout=settings.rpc_timeout_seconds,
        )
        revocations.start()
        mailer.start()
        # User tokens are served once the recent revocations are loaded (bounded).
        if not await view.wait_ready(settings.rpc_timeout_seconds):
            log.warning("query_svc: revoked sessions not loaded yet; the event store is away")
        server = await start_server(
            settings.listen,
            [
                Registration(SERVICE_NAME, pb_grpc.add_QueryServiceServicer_to_server, servicer),
                readiness.registration(),
            ],
            interceptors=service_interceptors(
                SERVICE_NAME, verifier, revocations=view, traced_as=TRACED_AS
            ),
            setting="QUERY_GRPC_LISTEN",
        )
        await readiness.start(server.health)
    except BaseException:
        if readiness is not None:
            await readiness.stop()
        if resets is not None:
            await resets.stop()
        if mailer is not None:
            await mailer.stop()
        await revocations.stop()
        if projector is not None:
            await projector.stop()
        for channel in channels:
            await channel.close(grace=None)
        await database.close()
        hasher.close()
        raise
    log.info(
        "query_svc serving gRPC on port %d (%s read model, %s event source, "
        "projector at position %d; mail: %s)",
        server.port,
        settings.db_backend,
        settings.event_source,
        projector.applied_position,
        mailer.transport.describe(),
    )
    return QueryService(
        server=server,
        projector=projector,
        rebuilder=rebuilder,
        database=database,
        read_model=read_model,
        hasher=hasher,
        mailer=mailer,
        revocations=revocations,
        resets=resets,
        readiness=readiness,
        channels=channels,
    )


async def serve() -> None:
    """Runs until SIGTERM/SIGINT, then stops gracefully."""
    service = await start(QuerySettings.from_env(environ()))
    await stop_event_on_signals().wait()
    await service.stop()
    tracing.shutdown()  # exports the spans still buffered


def main() -> None:
    try:
        setup_process("query_svc", environ())
        asyncio.run(serve())
    except (SettingsError, SchemaMismatch, WrongMasterKey, OSError) as exc:
        # A clear one-line reason, not a traceback: these are operator errors.
        raise SystemExit(f"query_svc: {exc}") from None
