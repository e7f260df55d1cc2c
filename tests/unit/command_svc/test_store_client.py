"""store_client wire conversions and the error translation of gRPC statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf import json_format

import domain
from command_svc import store_client
from command_svc.errors import ClaimConflict, StoreConflict, StoreFailure, StoreUnavailable
from service_kit.timeconv import to_timestamp

pytestmark = pytest.mark.unit

UID = "11111111-1111-4111-8111-111111111111"
AT = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_user_created_takes_its_email_claim() -> None:
    event = domain.UserCreated(
        aggregate_id=UID, version=1, occurred_at=AT, email="a@b.co", password_hash="h", role="user"
    )
    proposed = store_client.proposed_event(event, "e1")
    assert proposed.event_id == "e1"
    assert proposed.event_type == "user.created"
    assert json_format.MessageToDict(proposed.payload) == {
        "email": "a@b.co",
        "password_hash": "h",
        "role": "user",
    }
    assert [(c.namespace, c.value) for c in proposed.claims] == [("user.email", "a@b.co")]
    assert not proposed.releases


def test_email_change_takes_new_and_releases_old() -> None:
    event = domain.EmailChanged(
        aggregate_id=UID, version=2, occurred_at=AT, old_email="a@b.co", new_email="c@d.co"
    )
    proposed = store_client.proposed_event(event, "e2")
    assert [c.value for c in proposed.claims] == ["c@d.co"]
    assert [c.value for c in proposed.releases] == ["a@b.co"]


def test_login_touches_no_claim() -> None:
    event = domain.LoginRecorded(aggregate_id=UID, version=3, occurred_at=AT, client_address="")
    proposed = store_client.proposed_event(event, "e3")
    assert not proposed.claims and not proposed.releases


def test_stored_event_round_trips_to_the_domain_event() -> None:
    event = domain.PasswordChanged(aggregate_id=UID, version=2, occurred_at=AT, password_hash="h2")
    proposed = store_client.proposed_event(event, "e4")
    stored = pb.Event(
        position=7,
        event_id="e4",
        aggregate_id=UID,
        version=2,
        event_type=proposed.event_type,
        timestamp=to_timestamp(AT),
        payload=proposed.payload,
    )
    assert store_client.domain_event(stored) == event


class _RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (grpc.StatusCode.ABORTED, StoreConflict),
        (grpc.StatusCode.ALREADY_EXISTS, ClaimConflict),
        (grpc.StatusCode.UNAVAILABLE, StoreUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, StoreUnavailable),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, StoreUnavailable),
        (grpc.StatusCode.INVALID_ARGUMENT, StoreFailure),
        (grpc.StatusCode.PERMISSION_DENIED, StoreFailure),
    ],
)
def test_status_translation(code: grpc.StatusCode, kind: type[Exception]) -> None:
    assert isinstance(store_client._store_error(_RpcError(code, "d")), kind)
