"""Several invalid fields at once are all reported: on gRPC as google.rpc.BadRequest
details (read with grpcio-status), over HTTP as "violations", in one round trip."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cqrs.command.v1 import command_pb2, command_pb2_grpc
from cqrs.eventstore.v1 import event_store_pb2, event_store_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.http_client import HttpClient
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e


async def _register_refusal(target: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = command_pb2_grpc.CommandServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Register(
                command_pb2.RegisterRequest(email="not-an-email", password="short"), timeout=10
            )
    return caught.value


def test_grpc_lists_every_invalid_field_in_bad_request_details(
    e2e_system: SystemProcess,
) -> None:
    error = asyncio.run(_register_refusal(f"127.0.0.1:{e2e_system.ports.command_grpc}"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [(v.field, v.description, v.reason) for v in bad.field_violations] == [
        ("email", "must be a valid email address", "string.email_address"),
        ("password", "must be at least 8 characters", "string.min_len"),
    ]
    assert error.details() == (
        "email: must be a valid email address; password: must be at least 8 characters"
    )


async def _list_refusal(target: str, token: str) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = event_store_pb2_grpc.EventStoreServiceStub(channel)
        request = event_store_pb2.ListEventsRequest(aggregate_id="NOT-A-UUID", limit=5000)
        request.since.seconds = 253_402_300_800  # year 10000
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListEvents(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
    return caught.value


def test_grpc_lists_them_after_the_access_check(
    e2e_system: SystemProcess, admin_token: str
) -> None:
    error = asyncio.run(_list_refusal(f"127.0.0.1:{e2e_system.ports.store_grpc}", admin_token))
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert {v.field for v in bad.field_violations} == {"aggregate_id", "since", "limit"}


def test_http_lists_every_invalid_field_in_violations(http: HttpClient) -> None:
    for client in (http, http.root):  # our routes and the seed's
        answer = client.post("/register", json_body={"email": "not-an-email", "password": "x"})
        assert answer.status == 400, answer.describe()
        assert answer.code == "INVALID_ARGUMENT"
        assert answer.violations == {
            "email": "must be a valid email address",
            "password": "must be at least 8 characters",
        }


def test_http_names_nested_fields_and_alternatives(http: HttpClient, admin_token: str) -> None:
    answer = http.get("/replay/users/state-at?page_size=5000&page_token=NOPE", token=admin_token)
    assert answer.status == 400, answer.describe()
    assert set(answer.violations) == {"timestamp", "page_size", "page_token"}
    admin = http.get("/users?page_size=1", token=admin_token).json()["users"][0]["id"]
    answer = http.get(f"/replay/user/{admin}/state-at", token=admin_token)
    assert answer.violations == {"point": "give exactly one of timestamp, version"}


def test_the_gateways_own_400s_have_the_same_shape(http: HttpClient, admin_token: str) -> None:
    answer = http.get("/events?limit=many&since=yesterday", token=admin_token)
    assert answer.status == 400, answer.describe()
    assert set(answer.violations) == {"limit", "since"}
    answer = http.post("/register", data=b"{not json")
    assert answer.status == 400 and set(answer.violations) == {"body"}


def test_wrong_json_types_and_broken_rules_are_reported_together(http: HttpClient) -> None:
    # A field of the wrong JSON type never reaches the backend's rules; the
    # other fields are still checked against them, in the same answer.
    for client in (http, http.root):
        answer = client.post(
            "/register", json_body={"email": 42, "password": "short", "role": "admin"}
        )
        assert answer.status == 400, answer.describe()
        assert answer.violations == {
            "email": "expected a string, got a number",
            "role": "unknown field of RegisterRequest",
            "password": "must be at least 8 characters",
        }
