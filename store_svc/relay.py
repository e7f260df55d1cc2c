"""The outbox relay: every committed event, in position order, to a Kafka topic.

The store's own log is the outbox: the relay follows the engine's catch-up
subscription (``store.subscribe(from_position)``) from its durable position
and publishes each event to ``topic`` with

* key: the aggregate id (UTF-8), so one aggregate's events share a partition;
* value: the ``cqrs.eventstore.v1.Event`` message, serialized and NOT
  redacted (password hashes included): the topic is internal, read only by
  the project's services (query_svc needs the hashes for logins), never
  exposed to users. Its payload is the stored encoding itself: personal
  fields stay sealed with the user's data key (``pii.codec``), so the topic's
  log segments never hold an address in clear and erasure reaches them too;
* headers: ``event_type``, ``position`` (decimal) and ``content-type``
  (:data:`CONTENT_TYPE`).

The producer is idempotent with ``acks=all``. Events are sent as they come
(many in flight, batched by the producer) and their acknowledgements are
awaited in position order; :attr:`OutboxRelay.relayed_position` moves only
over acknowledged events, and the saver task records it durably
(:mod:`store_svc.relay_checkpoint`) at most every ``save_interval`` seconds
and once more at a graceful stop.

Invariants:

* Nothing committed is skipped: the relay resumes (after a Kafka error, a
  storage error or a crash) from a position at or below the last one Kafka
  acknowledged. The price is at-least-once: events after the durable
  position may be published twice. Consumers deduplicate by position.
* Appends never wait for the relay: it is one more subscriber of the
  engine, which drops a slow subscriber back to paging from storage. Kafka
  being down delays the topic (retries with exponential backoff, logged),
  never a command.
* ``lag`` is the store's head position minus the relayed position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaProducer

from service_kit import dependency_errors
from service_kit.observability import RELAY_ERRORS
from store_svc.convert import event_to_pb
from store_svc.engine import EventStore, RecordedEvent
from store_svc.relay_checkpoint import RelayCheckpoint

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "application/x-protobuf; proto=cqrs.eventstore.v1.Event"
"""The ``content-type`` header of every message the relay publishes."""


class Producer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` the relay uses."""

    async def start(self) -> None: ...

    async def send(
        self, topic: str, value: bytes, key: bytes, *, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        """Queues one message; the future resolves once Kafka acknowledged it."""
        ...

    async def stop(self) -> None: ...


ProducerFactory = Callable[[], Producer]


def kafka_producer(*, broker: str, request_timeout: float = 10.0) -> Producer:
    """An idempotent ``acks=all`` aiokafka producer for ``broker`` (host:port[,host:port])."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.split(","),
        client_id="store_svc-relay",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=int(request_timeout * 1000),
    )
    pace_metadata_refreshes(producer.client, interval=_METADATA_REFRESH_PACE)
    typed: Producer = producer
    return typed


# At most one metadata refresh per this many seconds while a broker is away.
_METADATA_REFRESH_PACE: Final = 0.5


def pace_metadata_refreshes(client: Any, *, interval: float) -> None:
    """Holds an aiokafka client's forced metadata refreshes to one per ``interval``.

    Why: aiokafka 0.14's sender asks for a refresh in a loop, without any
    pause, while a partition has no known leader (the broker is down); each
    refresh fails at once, so the store's process spun at thousands of
    connection attempts and ERROR log lines a second for the whole outage.
    Pacing the refreshes turns that into a couple a second, and costs a
    healthy cluster nothing (refreshes are rare there).
    """
    refresh = client.force_metadata_update
    next_allowed = 0.0

    def paced() -> asyncio.Future[Any]:
        nonlocal next_allowed
        now = asyncio.get_running_loop().time()
        delay = next_allowed - now
        next_allowed = max(now, next_allowed) + interval
        if delay <= 0:
            future: asyncio.Future[Any] = refresh()
            return future

        async def later() -> Any:
            await asyncio.sleep(delay)
            try:
                return await refresh()
            except Exception:  # the client closed meanwhile: nothing to refresh
                return False

        return asyncio.ensure_future(later())

    client.force_metadata_update = paced


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """What the relay publishes for one event."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def kafka_message(record: RecordedEvent) -> KafkaMessage:
    """The message for one stored event (unredacted: see the module docstring)."""
    return KafkaMessage(
        key=record.aggregate_id.encode(),
        value=event_to_pb(record, None, redact=False).SerializeToString(),
        headers=[
            ("event_type", record.event_type.encode()),
            ("position", str(record.position).encode()),
            ("content-type", CONTENT_TYPE.encode()),
            # W3C trace context: the consumer continues the request's trace.
            *([("traceparent", record.traceparent.encode())] if record.traceparent else []),
        ],
    )


@dataclass(frozen=True, slots=True)
class _End:
    """The sender has stopped: no more futures follow."""


_END: Final = _End()
_Futures = asyncio.Queue[tuple[int, asyncio.Future[Any]] | _End]


class OutboxRelay:
    """Publishes the store's events to Kafka (see the module docstring).

    ``start()`` returns at once (Kafka may be down); ``stop()`` first gives the
    relay up to ``grace`` seconds to publish everything committed so far.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        checkpoint: RelayCheckpoint,
        producer_factory: ProducerFactory,
        topic: str,
        save_interval: float = 1.0,
        max_in_flight: int = 10_000,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._producer_factory = producer_factory
        self.topic = topic
        self._save_interval = save_interval
        self._max_in_flight = max_in_flight
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._backoff = backoff_initial
        self._close_timeout = close_timeout
        self._relayed: int | None = None  # None until the durable position is loaded
        self._durable = 0
        self._moved = asyncio.Event()
        self._stopping = False
        self._sender: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._saving_done = asyncio.Event()
        self._save_lock = asyncio.Lock()
        self._save_failing = False
        self.last_error = ""
        self.events_published = 0

    # -- observing ----------------------------------------------------------------

    @property
    def relayed_position(self) -> int:
        """Every event up to this position was acknowledged by Kafka."""
        return self._relayed or 0

    @property
    def durable_position(self) -> int:
        """The last position saved in the relay checkpoint (where a restart resumes)."""
        return self._durable

    @property
    def lag(self) -> int:
        """Events committed but not yet acknowledged by Kafka."""
        return max(self._store.head_position() - self.relayed_position, 0)

    async def wait_relayed(self, position: int, *, within: float) -> bool:
        """Waits until Kafka acknowledged every event up to ``position``; False on timeout."""
        try:
            async with asyncio.timeout(within):
                while self.relayed_position < position:
                    moved = self._moved
                    await moved.wait()
        except TimeoutError:
            return self.relayed_position >= position
        return True

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Starts relaying in the background (never waits for Kafka)."""
        if self._task is not None:
            raise RuntimeError("relay already started")
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self._saver = asyncio.create_task(self._save_periodically(), name="outbox-relay-saver")

    async def stop(self, grace: float = 5.0) -> None:
        """Publishes what is committed (up to ``grace`` seconds), stops, saves the position."""
        if self._task is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await self.wait_relayed(self._store.head_position(), within=grace)
        self._stopping = True
        if self._sender is not None:
            # The sender stops reading; the acknowledgements it awaits still come in.
            self._sender.cancel()
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                await asyncio.shield(self._task)
        except TimeoutError:
            pass
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            # Never cancelled mid-save (the write would go on in its thread and
            # race with the last save): told to stop, it finishes what it does.
            self._saving_done.set()
            if self._saver is not None:
                await self._saver
        await self._save()
        log.info(
            "outbox relay stopped at position %d (durable %d, lag %d)",
            self.relayed_position,
            self._durable,
            self.lag,
        )

    # -- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if self._relayed is None:
                    self._relayed = self._durable = await self._resume_position()
                    log.info(
                        "outbox relay to %r resumes after position %d", self.topic, self._relayed
                    )
                if await self._session():
                    return  # the store closed its subscription: it is shutting down
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                RELAY_ERRORS.inc()
                self.last_error = _describe(exc)
                log.warning(
                    "outbox relay to %r at position %d failed (%s); retrying in %.1fs",
                    self.topic,
                    self.relayed_position,
                    self.last_error,
                    self._backoff,
                )
            if self._stopping:
                return
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._backoff_max)

    async def _resume_position(self) -> int:
        position = await self._checkpoint.load()
        head = self._store.head_position()
        if position > head:
            # The checkpoint belongs to another store (a data folder or database
            # replaced under it): publishing again from the start loses nothing.
            log.error(
                "relay checkpoint says position %d but the store ends at %d; relaying from 0",
                position,
                head,
            )
            return 0
        return position

    async def _session(self) -> bool:
        """One producer's life; True if the subscription ended (store closing)."""
        producer = self._producer_factory()
        futures: _Futures = asyncio.Queue()
        # Per session, so that slots held by a failed session's futures are
        # simply dropped with it.
        slots = asyncio.Semaphore(self._max_in_flight)
        try:
            await producer.start()
            sender = asyncio.create_task(
                self._send_all(producer, futures, slots), name="relay-sender"
            )
            self._sender = sender
            if self._stopping:  # stop() came while this session was starting
                sender.cancel()
            acker = asyncio.create_task(self._ack_all(futures, slots), name="relay-acker")
            try:
                await asyncio.wait([acker])
            finally:
                self._sender = None
                for task in (sender, acker):
                    task.cancel()
                await asyncio.wait([sender, acker])
            # A failed acknowledgement first: it is why the sender was cancelled.
            for task in (acker, sender):
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
            return not sender.cancelled()
        finally:
            _forget(futures)
            await self._close(producer)

    async def _send_all(
        self, producer: Producer, futures: _Futures, slots: asyncio.Semaphore
    ) -> None:
        """Sends every event after the relayed position; ends the queue however it stops."""
        try:
            subscription = self._store.subscribe(self.relayed_position)
            async with contextlib.aclosing(subscription):
                async for item in subscription:
                    if not isinstance(item, RecordedEvent):
                        continue  # a heartbeat
                    message = kafka_message(item)
                    await slots.acquire()
                    try:
                        future = await producer.send(
                            self.topic, message.value, message.key, headers=message.headers
                        )
                    except BaseException:
                        slots.release()
                        raise
                    futures.put_nowait((item.position, future))
        finally:
            futures.put_nowait(_END)

    async def _ack_all(self, futures: _Futures, slots: asyncio.Semaphore) -> None:
        """Awaits the acknowledgements in position order and moves the relayed position."""
        while True:
            entry = await futures.get()
            if isinstance(entry, _End):
                return
            position, future = entry
            try:
                await future
            finally:
                slots.release()
            self._relayed = position
            # Wake every waiter and arm a fresh event for the next move.
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()
            self.events_published += 1
            self._backoff = self._backoff_initial
            self.last_error = ""

    async def _close(self, producer: Producer) -> None:
        # stop() flushes what is queued; with Kafka down that could take the
        # whole request timeout, and nothing depends on it: bound it.
        try:
            async with asyncio.timeout(self._close_timeout):
                await producer.stop()
        except Exception as exc:
            log.debug("closing the Kafka producer failed: %r", exc)

    # -- the durable position -----------------------------------------------------

    async def _save_periodically(self) -> None:
        while not self._saving_done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._save_interval):
                    await self._saving_done.wait()
            await self._save()

    async def _save(self) -> None:
        # One write at a time, each reading the position under the lock: the
        # saved position never goes back.
        async with self._save_lock:
            position = self.relayed_position
            if position <= self._durable:
                return
            try:
                await self._checkpoint.save(position)
            except Exception as exc:
                if not self._save_failing:
                    log.warning("relay checkpoint: cannot save position %d (%s)", position, exc)
                self._save_failing = True
                return
            if self._save_failing:
                log.info("relay checkpoint: saving works again (position %d)", position)
            self._save_failing = False
            self._durable = position


def _forget(futures: _Futures) -> None:
    """Marks the outcome of futures nobody will await as seen (no 'never retrieved' noise)."""
    while not futures.empty():
        entry = futures.get_nowait()
        if not isinstance(entry, _End):
            entry[1].add_done_callback(_ignore_outcome)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    return dependency_errors.describe(exc)
