"""Appends over ``EventStoreService.AppendStream``: one long-lived stream, not a call each.

A unary call costs its own HTTP/2 stream, headers, token check and server
task; on one stream an append is one message each way, which is what lets
command_svc keep up with the store on two cores (BENCHMARKS.md, scenario 3).
Like EventStoreDB's batch append, each request carries an id that its reply
names, and replies come in completion order.

Invariants:
- one stream takes new requests at a time; it is replaced when it broke,
  when the service token changed (the store checks the token once, when a
  stream opens), when ``route`` changed (the store's leader moved to another
  address: service_kit.leader_channel) or after ``lifetime`` seconds. A replaced stream is closed
  for writing and ends once the store answered what it had (it is cancelled
  if that takes more than a minute);
- every request ends exactly one way: with its reply; with the error the
  stream ended with (``StoreUnreached`` when the store was unreachable,
  restarting or ending the stream: the append may or may not be stored, and
  resending the same event ids is safe; another ``StoreError`` when the store
  refused the stream itself, e.g. a bad token); or cancelled by its caller's
  deadline, and then it is not sent if it has not been yet;
- at most ``max_waiting`` requests wait for replies; more is
  ``StoreUnavailable`` at once rather than an ever-growing queue;
- one task writes to a stream (grpc.aio allows one write at a time) and one
  task reads it; they run in a context of their own, not in the context of
  the command that happened to open the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
from collections.abc import Callable

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from command_svc.errors import StoreError, StoreUnavailable, StoreUnreached, store_error
from service_kit.leader_channel import unreached

__all__ = ["DEFAULT_LIFETIME", "AppendStreamUnsupported", "AppendStreams"]

log = logging.getLogger(__name__)

AuthMetadata = Callable[[], list[tuple[str, str]]]

DEFAULT_LIFETIME = 300.0
DEFAULT_MAX_WAITING = 10_000
_DRAIN_SECONDS = 60.0  # how long a replaced stream may take to end by itself
_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}
# Stream endings that say nothing about the appends themselves: resend them.
_RECONNECT = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class AppendStreamUnsupported(StoreError):
    """The store has no AppendStream (an older store_svc): use unary Append."""


def _stream_error(code: grpc.StatusCode | None, details: str) -> StoreError:
    """What a request gets when its stream ended before its reply."""
    if code is None or code in _RECONNECT or unreached(code, details):
        return StoreUnreached(details)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return AppendStreamUnsupported(details)
    return store_error(code, details)


class _Stream:
    """One open AppendStream call with its writer and reader tasks."""

    def __init__(
        self,
        stub: pb_grpc.EventStoreServiceAsyncStub,
        call_metadata: list[tuple[str, str]],
        route: int = 0,
    ):
        self.metadata = call_metadata
        self.route = route  # the store address it went to (service_kit.leader_channel)
        self.opened = time.monotonic()
        self.last_reply = self.opened
        # No request iterator: requests are written one by one (call.write).
        self._call = stub.AppendStream(None, metadata=call_metadata)
        self._outbox: asyncio.Queue[pb.AppendStreamRequest | None] = asyncio.Queue()
        self.pending: dict[int, asyncio.Future[pb.AppendStreamResponse]] = {}
        self._ids = itertools.count(1)
        self.ended: tuple[grpc.StatusCode | None, str] | None = None
        own = contextvars.Context()
        self._writer = asyncio.create_task(self._write(), name="append-writer", context=own)
        self.reader = asyncio.create_task(self._read(), name="append-reader", context=own)

    @property
    def broken(self) -> bool:
        return self.ended is not None

    async def send(self, request: pb.AppendStreamRequest) -> pb.AppendStreamResponse:
        if self.ended is not None:
            raise _stream_error(*self.ended)
        request_id = next(self._ids)
        request.request_id = request_id
        future: asyncio.Future[pb.AppendStreamResponse] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self._outbox.put_nowait(request)
        try:
            return await future
        finally:  # answered, failed, or the caller gave up (its deadline)
            self.pending.pop(request_id, None)

    def stalled(self, for_seconds: float) -> bool:
        """Requests are waiting and nothing came back for ``for_seconds``."""
        return bool(self.pending) and time.monotonic() - self.last_reply >= for_seconds

    def retire(self) -> None:
        """No new requests; the stream ends once the store answered the ones sent."""
        self._outbox.put_nowait(None)

    def abandon(self, why: str) -> None:
        """Fails what it holds with ``StoreUnreached`` and cancels the call."""
        self._end(None, why)

    async def close(self) -> None:
        self._end(None, "the append stream was closed")
        for task in (self._writer, self.reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write(self) -> None:
        try:
            while (request := await self._outbox.get()) is not None:
                if request.request_id in self.pending:  # else its caller gave up
                    await self._call.write(request)
            await self._call.done_writing()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._end_with(exc)

    async def _read(self) -> None:
        try:
            async for reply in self._call:
                self.last_reply = time.monotonic()
                future = self.pending.get(reply.request_id)
                if future is not None and not future.done():
                    future.set_result(reply)
            self._end(None, "the store ended the append stream")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._end_with(exc)

    def _end_with(self, exc: Exception) -> None:
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code()
            if code not in _RECONNECT and not unreached(code, exc.details() or ""):
                log.error("append stream refused by the store: %s %s", code.name, exc.details())
            self._end(code, f"{code.name}: {exc.details() or ''}")
        else:
            self._end(None, f"append stream failed: {exc!r}")

    def _end(self, code: grpc.StatusCode | None, details: str) -> None:
        if self.ended is None:
            self.ended = (code, details)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(_stream_error(*self.ended))
        self._call.cancel()


class AppendStreams:
    """Sends appends on the current stream, opening and replacing streams as needed."""

    def __init__(
        self,
        stub: pb_grpc.EventStoreServiceAsyncStub,
        auth_metadata: AuthMetadata,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        max_waiting: int = DEFAULT_MAX_WAITING,
        route: Callable[[], int] = lambda: 0,
    ) -> None:
        self._stub = stub
        self._route = route
        self._auth = auth_metadata
        self._lifetime = lifetime
        self._max_waiting = max_waiting
        self._stream: _Stream | None = None
        self._retired: set[_Stream] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closing: set[asyncio.Task[None]] = set()

    async def append(
        self,
        request: pb.AppendRequest,
        *,
        correlation_id: str,
        causation_id: str,
        traceparent: str = "",
    ) -> pb.AppendResponse:
        """Append's reply; ``StoreError`` for what Append would have failed with.

        No deadline of its own: the caller bounds the wait (``asyncio.timeout``).
        """
        stream = self._current()
        if len(stream.pending) >= self._max_waiting:
            raise StoreUnavailable(f"{self._max_waiting} appends already wait for the store")
        message = pb.AppendStreamRequest(
            append=request,
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
        )
        reply = await stream.send(message)
        if reply.WhichOneof("outcome") != "appended":
            raise _failure(reply.failed)
        return reply.appended

    def abandon_if_stalled(self, for_seconds: float) -> None:
        """After a deadline passed: a stream that answered nothing for that long
        is taken for dead (a half-open connection) and the next append opens a
        new one."""
        stream = self._stream
        if stream is not None and stream.stalled(for_seconds):
            stream.abandon(f"no reply from the store for {for_seconds:g}s")

    def _current(self) -> _Stream:
        call_metadata = self._auth()
        route = self._route()
        stream = self._stream
        if (
            stream is None
            or stream.broken
            or stream.metadata != call_metadata
            or stream.route != route
            or time.monotonic() - stream.opened > self._lifetime
        ):
            if stream is not None:
                self._retire(stream)
            stream = self._stream = _Stream(self._stub, call_metadata, route)
        return stream

    def _retire(self, stream: _Stream) -> None:
        stream.retire()
        self._retired.add(stream)
        stream.reader.add_done_callback(lambda _task: self._retired.discard(stream))

        def close_late() -> None:
            # A store that never ends it must not keep it (and its tasks)
            # forever; its callers have given up long before (their deadlines).
            self._timers.discard(timer)
            task = asyncio.ensure_future(stream.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        timer = asyncio.get_running_loop().call_later(
            _DRAIN_SECONDS, close_late, context=contextvars.Context()
        )
        self._timers.add(timer)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        streams = [*self._retired, *([self._stream] if self._stream else [])]
        self._stream = None
        self._retired.clear()
        for stream in streams:
            await stream.close()
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _failure(failed: pb.AppendFailure) -> StoreError:
    status = _STATUS_BY_NUMBER.get(failed.code, grpc.StatusCode.UNKNOWN)
    return store_error(status, failed.message)
