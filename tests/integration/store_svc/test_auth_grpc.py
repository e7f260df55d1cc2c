"""store_svc enforces who may call what: services write, owners read their own."""

from __future__ import annotations

import uuid

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from service_kit.auth import ROLE_ADMIN, ROLE_USER
from store_svc.app import StoreService
from tests.auth_support import ADMIN, bearer
from tests.integration.store_svc.support import StoreStub, append_request, created, register

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_store_access_rules(store: Store) -> None:
    service, service_stub = store
    user_id = await register(service_stub, "owner@example.com")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        state = pb.GetStateRequest(aggregate_id=user_id)
        owner, other = bearer(user_id, ROLE_USER), bearer(str(uuid.uuid4()), ROLE_USER)
        assert await code_of(stub.GetState(state)) == grpc.StatusCode.UNAUTHENTICATED
        bad = [("authorization", "Bearer not-a-jwt")]
        assert await code_of(stub.GetState(state, metadata=bad)) == grpc.StatusCode.UNAUTHENTICATED
        assert await code_of(stub.GetState(state, metadata=other)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert await code_of(stub.GetState(state, metadata=owner)) == grpc.StatusCode.OK
        assert await code_of(stub.GetState(state, metadata=ADMIN)) == grpc.StatusCode.OK
        # The global log is admin's; writes and the unredacted load are services'.
        listing = pb.ListEventsRequest()
        assert await code_of(stub.ListEvents(listing, metadata=owner)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        assert await code_of(stub.ListEvents(listing, metadata=ADMIN)) == grpc.StatusCode.OK
        new_id = str(uuid.uuid4())
        append = append_request(new_id, [created(new_id, "x@example.com")], exact=0)
        assert await code_of(stub.Append(append, metadata=ADMIN)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        load = pb.LoadAggregateRequest(aggregate_id=user_id)
        assert await code_of(stub.LoadAggregate(load, metadata=owner)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        secrets = stub.Subscribe(
            pb.SubscribeRequest(include_secrets=True), metadata=bearer("root", ROLE_ADMIN)
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in secrets:
                pass
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "include_secrets" in (err.value.details() or "")
