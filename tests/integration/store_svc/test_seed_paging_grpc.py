"""The seed's paging on store reads: ListEvents ``offset``, GetAggregateEvents ``from_version``.

Both are additive fields of the contract, so the seed's ``GET /events?offset=``
and ``GET /events/aggregate/{id}?from_version=`` work through the gateway
exactly as any other request field does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

import domain
from store_svc.app import StoreService
from tests.integration.store_svc.support import StoreStub, append_request, created

pytestmark = pytest.mark.integration

Store = tuple[StoreService, StoreStub]


def login(user_id: str, version: int) -> domain.LoginRecorded:
    return domain.LoginRecorded(
        aggregate_id=user_id, version=version, occurred_at=datetime.now(UTC), client_address=""
    )


async def two_interleaved_users(stub: StoreStub) -> tuple[str, str]:
    """Two users of 4 events each, appended alternately (positions 1..8)."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for user_id in (first, second):
        await stub.Append(
            append_request(user_id, [created(user_id, f"{user_id}@example.com")], exact=0)
        )
    for version in range(2, 5):
        for user_id in (first, second):
            await stub.Append(append_request(user_id, [login(user_id, version)], exact=version - 1))
    return first, second


async def test_offset_skips_matching_events_with_and_without_filters(store: Store) -> None:
    _, stub = store
    first, _ = await two_interleaved_users(stub)
    every = await stub.ListEvents(pb.ListEventsRequest(limit=100))
    assert [e.position for e in every.events] == list(range(1, 9))
    page = await stub.ListEvents(pb.ListEventsRequest(limit=3, offset=2))
    assert [e.position for e in page.events] == [3, 4, 5]
    # With a filter the offset counts matching events, not positions.
    mine = await stub.ListEvents(pb.ListEventsRequest(aggregate_id=first, limit=10, offset=1))
    assert [(e.aggregate_id, e.version) for e in mine.events] == [(first, v) for v in (2, 3, 4)]
    logins = await stub.ListEvents(
        pb.ListEventsRequest(event_type="user.login.recorded", limit=2, offset=3)
    )
    assert [e.position for e in logins.events] == [6, 7]
    # The offset applies after the cursor; past the end the page is empty.
    after = await stub.ListEvents(pb.ListEventsRequest(after_position=4, offset=2, limit=10))
    assert [e.position for e in after.events] == [7, 8]
    beyond = await stub.ListEvents(pb.ListEventsRequest(aggregate_id=first, offset=50))
    assert (beyond.count, list(beyond.events)) == (0, [])


async def test_from_version_returns_that_version_onwards(store: Store) -> None:
    _, stub = store
    first, _ = await two_interleaved_users(stub)
    for asked, expected in ((0, [1, 2, 3, 4]), (1, [1, 2, 3, 4]), (3, [3, 4]), (9, [])):
        answer = await stub.GetAggregateEvents(
            pb.GetAggregateEventsRequest(aggregate_id=first, from_version=asked)
        )
        assert [e.version for e in answer.events] == expected, asked
        assert answer.count == len(expected)


async def test_negative_offset_or_from_version_is_invalid_argument(store: Store) -> None:
    _, stub = store
    first, _ = await two_interleaved_users(stub)
    calls = (
        (stub.ListEvents(pb.ListEventsRequest(offset=-1)), "offset"),
        (
            stub.GetAggregateEvents(
                pb.GetAggregateEventsRequest(aggregate_id=first, from_version=-1)
            ),
            "from_version",
        ),
    )
    for call, field in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (raised.value.details() or "").startswith(f"{field}:")
