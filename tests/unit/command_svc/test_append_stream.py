"""AppendStreams against a scripted stream: replies by id, broken and replaced streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

from command_svc.append_stream import AppendStreams, AppendStreamUnsupported
from command_svc.errors import (
    ClaimConflict,
    StoreConflict,
    StoreFailure,
    StoreUnavailable,
    StoreUnreached,
)

_END = object()


class FakeCall:
    """One AppendStream call: records writes; the test pushes replies or an error."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata
        self.written: list[pb.AppendStreamRequest] = []
        self.done_writing_called = False
        self.cancelled = False
        self._replies: asyncio.Queue[Any] = asyncio.Queue()
        self.wrote = asyncio.Event()
        self.gate = asyncio.Event()  # writes wait for it (flow control)
        self.gate.set()

    async def write(self, request: pb.AppendStreamRequest) -> None:
        await self.gate.wait()
        self.written.append(request)
        self.wrote.set()

    async def done_writing(self) -> None:
        self.done_writing_called = True

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def reply(self, reply: pb.AppendStreamResponse) -> None:
        self._replies.put_nowait(reply)

    def fail(self, error: BaseException) -> None:
        self._replies.put_nowait(error)

    def end(self) -> None:
        self._replies.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[pb.AppendStreamResponse]:
        while True:
            item = await self._replies.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class FakeStub:
    def __init__(self) -> None:
        self.calls: list[FakeCall] = []

    def AppendStream(self, request_iterator: Any, metadata: Any = None) -> FakeCall:
        assert request_iterator is None
        call = FakeCall(metadata)
        self.calls.append(call)
        return call


def _appended(request_id: int, version: int) -> pb.AppendStreamResponse:
    return pb.AppendStreamResponse(
        request_id=request_id,
        appended=pb.AppendResponse(aggregate_id="a", version=version, positions=[version]),
    )


def _failed(request_id: int, code: grpc.StatusCode, message: str) -> pb.AppendStreamResponse:
    return pb.AppendStreamResponse(
        request_id=request_id, failed=pb.AppendFailure(code=code.value[0], message=message)
    )


async def _written(call: FakeCall, count: int) -> None:
    while len(call.written) < count:
        call.wrote.clear()
        await asyncio.wait_for(call.wrote.wait(), 2)


def _streams(stub: FakeStub, token: list[str], **kw: Any) -> AppendStreams:
    return AppendStreams(stub, lambda: [("authorization", token[0])], **kw)  # type: ignore[arg-type]


def _send(streams: AppendStreams, n: int) -> asyncio.Task[pb.AppendResponse]:
    request = pb.AppendRequest(aggregate_id=f"a{n}")
    return asyncio.create_task(streams.append(request, correlation_id=f"c{n}", causation_id=""))


async def test_replies_are_matched_by_request_id_in_any_order() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    first, second = _send(streams, 1), _send(streams, 2)
    await asyncio.sleep(0)
    call = stub.calls[0]
    await _written(call, 2)
    ids = {r.append.aggregate_id: r.request_id for r in call.written}
    assert call.written[0].correlation_id == "c1"
    call.reply(_appended(ids["a2"], 7))
    call.reply(_appended(ids["a1"], 3))
    assert (await first).version == 3 and (await second).version == 7
    assert len(stub.calls) == 1  # one stream for both
    await streams.close()


async def test_a_failed_reply_is_the_error_append_would_raise_and_the_stream_goes_on() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    aborted, taken = _send(streams, 1), _send(streams, 2)
    await asyncio.sleep(0)
    call = stub.calls[0]
    await _written(call, 2)
    call.reply(_failed(call.written[0].request_id, grpc.StatusCode.ABORTED, "expected 1, at 2"))
    call.reply(_failed(call.written[1].request_id, grpc.StatusCode.ALREADY_EXISTS, "held"))
    with pytest.raises(StoreConflict):
        await aborted
    with pytest.raises(ClaimConflict):
        await taken
    ok = _send(streams, 3)
    await _written(call, 3)
    call.reply(_appended(call.written[2].request_id, 4))
    assert (await ok).version == 4 and len(stub.calls) == 1
    await streams.close()


async def test_a_broken_stream_fails_what_it_holds_and_the_next_append_opens_a_new_one() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    pending = _send(streams, 1)
    await asyncio.sleep(0)
    call = stub.calls[0]
    await _written(call, 1)
    call.fail(ConnectionResetError("store went away"))
    with pytest.raises(StoreUnreached, match="store went away"):
        await pending
    assert call.cancelled
    retry = _send(streams, 1)
    await asyncio.sleep(0)
    assert len(stub.calls) == 2
    fresh = stub.calls[1]
    await _written(fresh, 1)
    fresh.reply(_appended(fresh.written[0].request_id, 1))
    assert (await retry).version == 1
    await streams.close()


async def test_a_stream_the_store_ends_fails_its_unanswered_requests() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    pending = _send(streams, 1)
    await asyncio.sleep(0)
    await _written(stub.calls[0], 1)
    stub.calls[0].end()
    with pytest.raises(StoreUnreached, match="ended"):
        await pending
    await streams.close()


async def test_a_new_token_opens_a_new_stream_and_the_old_one_drains() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    old_request = _send(streams, 1)
    await asyncio.sleep(0)
    old = stub.calls[0]
    await _written(old, 1)
    token[0] = "t2"
    new_request = _send(streams, 2)
    await asyncio.sleep(0)
    assert len(stub.calls) == 2
    new = stub.calls[1]
    assert new.metadata == [("authorization", "t2")]
    await _written(new, 1)
    for _ in range(20):
        if old.done_writing_called:
            break
        await asyncio.sleep(0.01)
    assert old.done_writing_called  # retired: no new requests, but it still answers
    old.reply(_appended(old.written[0].request_id, 1))
    old.end()
    new.reply(_appended(new.written[0].request_id, 2))
    assert (await old_request).version == 1 and (await new_request).version == 2
    await streams.close()


async def test_streams_are_replaced_after_their_lifetime() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token, lifetime=0.0)
    first = _send(streams, 1)
    await asyncio.sleep(0)
    await _written(stub.calls[0], 1)
    await asyncio.sleep(0.01)
    second = _send(streams, 2)
    await asyncio.sleep(0)
    assert len(stub.calls) == 2
    stub.calls[0].reply(_appended(stub.calls[0].written[0].request_id, 1))
    await _written(stub.calls[1], 1)
    stub.calls[1].reply(_appended(stub.calls[1].written[0].request_id, 1))
    await first
    await second
    await streams.close()


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details, debug_error_string=""
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, StoreUnreached),  # restarting: resend
        (grpc.StatusCode.CANCELLED, StoreUnreached),
        (grpc.StatusCode.UNAUTHENTICATED, StoreFailure),  # our bug: INTERNAL, logged
        (grpc.StatusCode.PERMISSION_DENIED, StoreFailure),
        (grpc.StatusCode.UNIMPLEMENTED, AppendStreamUnsupported),  # an older store
    ],
)
async def test_a_stream_refused_or_ended_by_the_store_keeps_its_status(
    code: grpc.StatusCode, expected: type[Exception]
) -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    pending = _send(streams, 1)
    await asyncio.sleep(0)
    await _written(stub.calls[0], 1)
    stub.calls[0].fail(_rpc_error(code, "why"))
    with pytest.raises(expected) as caught:
        await pending
    assert type(caught.value) is expected
    await streams.close()


async def test_a_request_whose_caller_gave_up_before_it_was_written_is_not_sent() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    first = _send(streams, 1)
    await asyncio.sleep(0)
    call = stub.calls[0]
    await _written(call, 1)
    call.gate.clear()  # the store stops reading: writes block
    blocked, abandoned = _send(streams, 2), _send(streams, 3)
    await asyncio.sleep(0.01)
    abandoned.cancel()  # its deadline passed
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    call.gate.set()
    await _written(call, 2)
    await asyncio.sleep(0.01)
    assert [r.append.aggregate_id for r in call.written] == ["a1", "a2"]
    call.reply(_appended(call.written[0].request_id, 1))
    call.reply(_appended(call.written[1].request_id, 2))
    assert (await first).version == 1 and (await blocked).version == 2
    await streams.close()


async def test_too_many_waiting_appends_fail_at_once() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token, max_waiting=2)
    waiting = [_send(streams, 1), _send(streams, 2)]
    await asyncio.sleep(0)
    with pytest.raises(StoreUnavailable, match="already wait"):
        await _send(streams, 3)
    for task in waiting:
        task.cancel()
    await streams.close()


async def test_a_stalled_stream_is_abandoned_after_a_deadline() -> None:
    stub, token = FakeStub(), ["t1"]
    streams = _streams(stub, token)
    pending = _send(streams, 1)
    await asyncio.sleep(0)
    await _written(stub.calls[0], 1)
    streams.abandon_if_stalled(60.0)  # replied recently enough: kept
    assert not pending.done()
    await asyncio.sleep(0.02)
    streams.abandon_if_stalled(0.01)
    with pytest.raises(StoreUnreached, match="no reply"):
        await pending
    retry = _send(streams, 1)
    await asyncio.sleep(0)
    assert len(stub.calls) == 2
    retry.cancel()
    await streams.close()
