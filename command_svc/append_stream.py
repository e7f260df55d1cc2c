"""Appends over ``EventStoreService.AppendStream``: one long-lived stream, not a call each.

A unary call costs its own HTTP/2 stream, headers, token check and server
task; on one stream an append is one message each way, which is what lets
command_svc keep up with the store on two cores (BENCHMARKS.md, scenario 3).
Like EventStoreDB's batch append, each request carries an id that its reply
names, and replies come in completion order.

Invariants:
- one stream takes new requests at a time; it is replaced when it broke,
  when the service token changed (the store checks the token once, when a
  stream opens) or after ``lifetime`` seconds. A replaced stream is closed
  for writing and ends once the store answered what it had (it is cancelled
  if that takes more than a minute);
- every request ends exactly one way: with its reply; with
  ``StoreUnreached`` if the stream broke or ended first (the append may or
  may not be stored: resending the same event ids is safe); or cancelled by
  its caller's deadline;
- one task writes to a stream (grpc.aio allows one write at a time) and one
  task reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from command_svc.errors import StoreError, StoreUnreached, store_error

__all__ = ["DEFAULT_LIFETIME", "AppendStreams"]

AuthMetadata = Callable[[], list[tuple[str, str]]]

DEFAULT_LIFETIME = 300.0
_DRAIN_SECONDS = 60.0  # how long a replaced stream may take to end by itself
_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


class _Stream:
    """One open AppendStream call with its writer and reader tasks."""

    def __init__(
        self, stub: pb_grpc.EventStoreServiceAsyncStub, call_metadata: list[tuple[str, str]]
    ):
        self.metadata = call_metadata
        self.opened = time.monotonic()
        # No request iterator: requests are written one by one (call.write).
        self._call = stub.AppendStream(None, metadata=call_metadata)
        self._outbox: asyncio.Queue[pb.AppendStreamRequest | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[pb.AppendStreamResponse]] = {}
        self._ids = itertools.count(1)
        self.broken: str = ""  # why it cannot take requests any more
        self._writer = asyncio.create_task(self._write(), name="append-stream-writer")
        self.reader = asyncio.create_task(self._read(), name="append-stream-reader")

    async def send(self, request: pb.AppendStreamRequest) -> pb.AppendStreamResponse:
        if self.broken:
            raise StoreUnreached(self.broken)
        request_id = next(self._ids)
        request.request_id = request_id
        future: asyncio.Future[pb.AppendStreamResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._outbox.put_nowait(request)
        try:
            return await future
        finally:  # answered, failed, or the caller gave up (its deadline)
            self._pending.pop(request_id, None)

    def retire(self) -> None:
        """No new requests; the stream ends once the store answered the ones sent."""
        self._outbox.put_nowait(None)

    async def close(self) -> None:
        self._break("the append stream was closed")
        for task in (self._writer, self.reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write(self) -> None:
        try:
            while (request := await self._outbox.get()) is not None:
                await self._call.write(request)
            await self._call.done_writing()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._break(_describe(exc))

    async def _read(self) -> None:
        try:
            async for reply in self._call:
                future = self._pending.get(reply.request_id)
                if future is not None and not future.done():
                    future.set_result(reply)
            self._break("the store ended the append stream")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._break(_describe(exc))

    def _break(self, why: str) -> None:
        if not self.broken:
            self.broken = why
        for future in self._pending.values():
            if not future.done():
                future.set_exception(StoreUnreached(self.broken))
        self._call.cancel()


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details() or ''}"
    return f"append stream failed: {exc!r}"


class AppendStreams:
    """Sends appends on the current stream, opening and replacing streams as needed."""

    def __init__(
        self,
        stub: pb_grpc.EventStoreServiceAsyncStub,
        auth_metadata: AuthMetadata,
        *,
        lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        self._stub = stub
        self._auth = auth_metadata
        self._lifetime = lifetime
        self._stream: _Stream | None = None
        self._retired: set[_Stream] = set()

    async def append(
        self,
        request: pb.AppendRequest,
        *,
        correlation_id: str,
        causation_id: str,
    ) -> pb.AppendResponse:
        """Append's reply; ``StoreError`` for what Append would have failed with.

        No deadline of its own: the caller bounds the wait (``asyncio.timeout``).
        """
        message = pb.AppendStreamRequest(
            append=request, correlation_id=correlation_id, causation_id=causation_id
        )
        reply = await self._current().send(message)
        if reply.WhichOneof("outcome") != "appended":
            raise _failure(reply.failed)
        return reply.appended

    def _current(self) -> _Stream:
        call_metadata = self._auth()
        stream = self._stream
        if (
            stream is None
            or stream.broken
            or stream.metadata != call_metadata
            or time.monotonic() - stream.opened > self._lifetime
        ):
            if stream is not None:
                self._retire(stream)
            stream = self._stream = _Stream(self._stub, call_metadata)
        return stream

    def _retire(self, stream: _Stream) -> None:
        stream.retire()
        self._retired.add(stream)
        stream.reader.add_done_callback(lambda _task: self._retired.discard(stream))
        # A store that never ends it must not keep it (and its tasks) forever;
        # its callers have given up long before (their own deadlines).
        asyncio.get_running_loop().call_later(
            _DRAIN_SECONDS, lambda: asyncio.ensure_future(stream.close())
        )

    async def close(self) -> None:
        streams = [*self._retired, *([self._stream] if self._stream else [])]
        self._stream = None
        self._retired.clear()
        for stream in streams:
            await stream.close()


def _failure(failed: pb.AppendFailure) -> StoreError:
    status = _STATUS_BY_NUMBER.get(failed.code, grpc.StatusCode.UNKNOWN)
    return store_error(status, failed.message)
