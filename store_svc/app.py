"""Wiring of store_svc: settings → storage adapter → engine → gRPC server."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

import domain
from pii.codec import PayloadCodec
from pii.keystore import WrongMasterKey
from service_kit import dependency_errors, errors, tracing
from service_kit.interceptors import service_interceptors
from service_kit.observability import (
    APPEND_BATCH_EVENTS,
    observe_relay,
    observe_store_role,
    setup_process,
)
from service_kit.readiness import Readiness
from service_kit.revocation import RevocationView, revocation_horizon
from service_kit.schema_versions import SchemaMismatch
from service_kit.server import (
    Registration,
    RunningServer,
    check_bindable,
    start_server,
    stop_event_on_signals,
)
from service_kit.settings import SettingsError, environ
from store_svc import engine
from store_svc.readiness import store_readiness
from store_svc.relay import OutboxRelay, kafka_producer
from store_svc.relay_checkpoint import (
    ClickHouseRelayCheckpoint,
    FileRelayCheckpoint,
    RelayCheckpoint,
)
from store_svc.revocations import EngineRevocationFeed
from store_svc.servicer import SERVICE_NAME, TRACED_AS, EventStoreServicer
from store_svc.settings import StoreSettings
from store_svc.shredding import shred_erased
from store_svc.standby import StandbyServer
from store_svc.time_travel import AggregateNotFound, TimeTravel

log = logging.getLogger("store_svc")


errors.register(engine.WrongExpectedVersion, grpc.StatusCode.ABORTED)
errors.register(engine.ClaimTaken, grpc.StatusCode.ALREADY_EXISTS)
errors.register(engine.DuplicateEventId, grpc.StatusCode.ALREADY_EXISTS)
errors.register(engine.StorageUnavailable, grpc.StatusCode.UNAVAILABLE)
dependency_errors.register(
    engine.StorageUnavailable, reason="the event storage failed", system="event storage"
)
errors.register(AggregateNotFound, grpc.StatusCode.NOT_FOUND)
# Only what a caller can provoke here: a payload the domain cannot decode.
# (A stream that fails to fold is corrupt history: INTERNAL, and logged.)
errors.register(domain.ValidationError, grpc.StatusCode.INVALID_ARGUMENT)
errors.register(domain.UnknownEventType, grpc.StatusCode.INVALID_ARGUMENT)


async def open_storage(settings: StoreSettings) -> engine.Storage:
    """Opens the storage adapter the settings name (creating its schema)."""
    if settings.backend == "clickhouse":
        return await engine.ClickHouseStorage.open(settings.clickhouse)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await engine.SqliteStorage.open(settings.sqlite_path)


def relay_checkpoint(settings: StoreSettings) -> RelayCheckpoint:
    """Where the relay keeps its position: beside the events, in the same backend."""
    if settings.backend == "clickhouse":
        return ClickHouseRelayCheckpoint(settings=settings.clickhouse, topic=settings.relay.topic)
    return FileRelayCheckpoint(folder=settings.data_dir, topic=settings.relay.topic)


@dataclass(slots=True)
class StoreService:
    """A running store: engine, time travel, gRPC server, and the Kafka relay if enabled."""

    store: engine.EventStore
    time_travel: TimeTravel
    server: RunningServer
    relay: OutboxRelay | None = None
    servicer: EventStoreServicer | None = None
    readiness: Readiness | None = None
    revocations: EngineRevocationFeed | None = None

    async def stop(self, grace: float = 5.0) -> None:
        if self.readiness is not None:
            await self.readiness.stop()
        if self.revocations is not None:
            await self.revocations.stop()
        if self.servicer is not None:
            # Append streams never end by themselves: end them first, so the
            # grace period is not spent accepting appends that it then cuts.
            self.servicer.close_streams()
        await self.server.stop(grace)
        await self.time_travel.drain()
        if self.relay is not None:
            # Before the store closes: the relay publishes what is committed.
            await self.relay.stop(grace)
        await self.store.close()
        self.time_travel.codec.keys.close()


async def open_store(settings: StoreSettings) -> engine.EventStore:
    """Takes the writer lock and opens the engine; WriterLockHeld if another writer holds it.

    A standby (``STORE_STANDBY=1``) waits instead, trying again every lease
    heartbeat, and until it holds the lock answers every call UNAVAILABLE
    (store_svc.standby), so clients move on to the leader: it takes over when
    the leader's lease lapses (ClickHouse) or its process ends (SQLite).
    """
    refusing: StandbyServer | None = None  # answers UNAVAILABLE while we wait
    try:
        while True:
            storage = await open_storage(settings)
            try:
                return await engine.EventStore.open(
                    storage,
                    batch_max_events=settings.batch_max_events,
                    batch_max_delay=settings.batch_max_delay,
                    subscriber_buffer=settings.subscriber_buffer,
                    on_batch=APPEND_BATCH_EVENTS.observe,
                    stream_cache_events=settings.stream_cache_events,
                    head_cache_size=settings.head_cache_size,
                    claim_cache_size=settings.claim_cache_size,
                )
            except engine.WriterLockHeld as exc:
                await storage.close()
                if not settings.standby:
                    raise
                if refusing is None:
                    log.info("standby: %s; waiting for the writer lock", exc)
                    refusing = StandbyServer(settings.listen)
                    await refusing.start()
                refusing.waiting_because(str(exc))
            except BaseException:
                await storage.close()  # until open succeeds, the storage is ours to close
                raise
            await asyncio.sleep(settings.clickhouse.lease_heartbeat)
    finally:
        if refusing is not None:
            await refusing.stop()  # frees the address for the real server


async def start(settings: StoreSettings) -> StoreService:
    """Opens the store (refusing if another writer holds it, or waiting as a standby)
    and serves it.

    The key store opens first: a wrong master key (``pii.keystore.WrongMasterKey``)
    stops the start before anything is served."""
    check_bindable(settings.listen, "STORE_GRPC_LISTEN")  # before any work: one clear line
    codec = PayloadCodec(settings.pii_settings.open_keys())
    try:
        store = await open_store(settings)
    except BaseException:
        codec.keys.close()
        raise
    relay = None
    if settings.relay.enabled:
        relay = OutboxRelay(
            store=store,
            checkpoint=relay_checkpoint(settings),
            producer_factory=lambda: kafka_producer(broker=settings.relay.broker),
            topic=settings.relay.topic,
            save_interval=settings.relay.save_interval,
        )
    readiness = store_readiness(settings=settings, store=store, relay=relay)
    view = RevocationView(horizon=revocation_horizon(settings.tokens.ttl_seconds))
    revocations = EngineRevocationFeed(store, view)
    try:
        verifier = settings.tokens.verifier()
        await revocations.start()
        shredded = await shred_erased(store, codec)
        if shredded:
            log.warning(
                "destroyed %d data keys of users erased before a crash or restore", shredded
            )
        tt = TimeTravel(store, codec, snapshot_every=settings.snapshot_every)
        servicer = EventStoreServicer(store, tt)
        server = await start_server(
            settings.listen,
            [
                Registration(
                    SERVICE_NAME, pb_grpc.add_EventStoreServiceServicer_to_server, servicer
                ),
                readiness.registration(),
            ],
            interceptors=service_interceptors(
                SERVICE_NAME, verifier, revocations=view, traced_as=TRACED_AS
            ),
            setting="STORE_GRPC_LISTEN",
        )
    except BaseException:
        await revocations.stop()
        await store.close()
        codec.keys.close()
        raise
    if relay is not None:
        await relay.start()  # returns at once: Kafka being down delays only the relay
        observe_relay(relay)
        log.info("outbox relay on: topic %r at %s", settings.relay.topic, settings.relay.broker)
    await readiness.start(server.health)
    observe_store_role(lambda: str(getattr(store, "role", "leader")))
    log.info("store_svc serving gRPC on port %d (%s backend)", server.port, settings.backend)
    return StoreService(store, tt, server, relay, servicer, readiness, revocations)


async def serve(settings: StoreSettings) -> None:
    """Runs until SIGTERM/SIGINT, then stops gracefully."""
    service = await start(settings)
    await stop_event_on_signals().wait()
    await service.stop()
    tracing.shutdown()  # exports the spans still buffered


def main() -> None:
    try:
        setup_process("store_svc", environ())
        settings = StoreSettings.from_env(environ())
        asyncio.run(serve(settings))
    except (
        SettingsError,
        SchemaMismatch,
        OSError,
        WrongMasterKey,
        engine.WriterLockHeld,
        engine.StorageUnavailable,
    ) as exc:
        # A clear one-line reason, not a traceback: these are operator errors.
        raise SystemExit(f"store_svc: {exc}") from None
