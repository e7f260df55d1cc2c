"""AppendStream through the real gRPC API: one reply per request, failures do not end it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

import domain
from service_kit.auth import ROLE_SERVICE, Principal, TokenSettings
from store_svc.app import StoreService
from tests.auth_support import SERVICE, TEST_KEYS_DIR, bearer
from tests.integration.store_svc.support import StoreStub, append_request, created, register

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


def _login(user_id: str, version: int) -> domain.LoginRecorded:
    return domain.LoginRecorded(
        aggregate_id=user_id, version=version, occurred_at=datetime.now(UTC), client_address=""
    )


async def _exchange(
    stub: StoreStub, requests: list[pb.AppendStreamRequest]
) -> dict[int, pb.AppendStreamResponse]:
    """Sends every request on one stream, closes it, and collects the replies by id."""
    call = stub.AppendStream(None, metadata=SERVICE, timeout=30)
    for request in requests:
        await call.write(request)
    await call.done_writing()
    replies = {reply.request_id: reply async for reply in call}
    assert await call.code() == grpc.StatusCode.OK
    return replies


async def test_every_request_gets_its_own_reply_and_failures_do_not_end_the_stream(
    store: Store,
) -> None:
    _, stub = store
    user_id = await register(stub, "stream@example.com")
    fresh = [str(uuid.uuid4()) for _ in range(20)]
    requests = [
        pb.AppendStreamRequest(
            request_id=100 + i,
            append=append_request(u, [created(u, f"{u}@example.com")], exact=0),
            correlation_id=f"corr-{i}",
            causation_id=f"cmd-{i}",
        )
        for i, u in enumerate(fresh)
    ]
    # Wrong expected version, a malformed id, and a good append on the same stream.
    requests.append(
        pb.AppendStreamRequest(
            request_id=1, append=append_request(user_id, [_login(user_id, 5)], exact=4)
        )
    )
    requests.append(
        pb.AppendStreamRequest(
            request_id=2, append=append_request("not-a-uuid", [_login(user_id, 2)], exact=1)
        )
    )
    requests.append(
        pb.AppendStreamRequest(
            request_id=3, append=append_request(user_id, [_login(user_id, 2)], exact=1)
        )
    )
    replies = await _exchange(stub, requests)

    assert set(replies) == {r.request_id for r in requests}
    aborted, invalid, ok = replies[1], replies[2], replies[3]
    assert aborted.WhichOneof("outcome") == "failed"
    assert aborted.failed.code == grpc.StatusCode.ABORTED.value[0]
    assert "4" in aborted.failed.message and "1" in aborted.failed.message
    assert invalid.failed.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert invalid.failed.message.startswith("aggregate_id")
    assert ok.appended.aggregate_id == user_id and ok.appended.version == 2
    positions = sorted(replies[100 + i].appended.positions[0] for i in range(len(fresh)))
    assert len(set(positions)) == len(fresh)

    events = await stub.GetAggregateEvents(pb.GetAggregateEventsRequest(aggregate_id=fresh[7]))
    stored = events.events[0]
    assert (stored.correlation_id, stored.causation_id) == ("corr-7", "cmd-7")


async def test_a_retried_request_on_a_new_stream_is_idempotent(store: Store) -> None:
    _, stub = store
    user_id = str(uuid.uuid4())
    append = append_request(user_id, [created(user_id, "again@example.com")], exact=0)
    request = pb.AppendStreamRequest(request_id=1, append=append)
    first = (await _exchange(stub, [request]))[1]
    again = (await _exchange(stub, [request]))[1]
    assert not first.appended.idempotent and again.appended.idempotent
    assert again.appended.positions == first.appended.positions


async def test_only_services_may_open_it(store: Store) -> None:
    service, _ = store
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        user_id = str(uuid.uuid4())
        for metadata, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            (bearer(user_id), grpc.StatusCode.PERMISSION_DENIED),
        ):
            call = stub.AppendStream(None, metadata=metadata, timeout=10)
            # The refusal may already have ended the call when the write goes out.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.write(
                    pb.AppendStreamRequest(
                        request_id=1,
                        append=append_request(
                            user_id, [created(user_id, "x@example.com")], exact=0
                        ),
                    )
                )
                await call.done_writing()
                _ = [reply async for reply in call]
            assert caught.value.code() == code
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # nothing was stored
            await stub.GetAggregateEvents(
                pb.GetAggregateEventsRequest(aggregate_id=user_id), metadata=SERVICE, timeout=10
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def _one(stub: StoreStub, call: object, user: str) -> pb.AppendStreamResponse:
    """Writes one registration on an open AppendStream and reads its reply."""
    append = append_request(user, [created(user, f"{user}@example.com")], exact=0)
    await call.write(pb.AppendStreamRequest(request_id=1, append=append))  # type: ignore[attr-defined]
    reply: pb.AppendStreamResponse = await call.read()  # type: ignore[attr-defined]
    return reply


async def test_shutdown_ends_open_streams_with_unavailable_after_answering(
    store: Store,
) -> None:
    service, stub = store
    call = stub.AppendStream(None, metadata=SERVICE, timeout=30)
    first = await _one(stub, call, str(uuid.uuid4()))
    assert first.WhichOneof("outcome") == "appended"
    assert service.servicer is not None
    service.servicer.close_streams()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (caught.value.details() or "")


async def test_a_stream_ends_when_its_token_expires(store: Store) -> None:
    _, stub = store
    short = TokenSettings(keys_dir=TEST_KEYS_DIR, ttl_seconds=2).signer("tests")
    token, _ = short.issue(Principal("tests", "", ROLE_SERVICE), now=datetime.now(UTC))
    call = stub.AppendStream(None, metadata=[("authorization", f"Bearer {token}")], timeout=30)
    first = await _one(stub, call, str(uuid.uuid4()))
    assert first.WhichOneof("outcome") == "appended"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "token expired" in (caught.value.details() or "")
