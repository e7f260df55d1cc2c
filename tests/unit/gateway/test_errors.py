"""gRPC status → HTTP status and the one error body shape."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from gateway.errors import HTTP_STATUS, GatewayError, from_rpc_error, http_status

pytestmark = pytest.mark.unit


def rpc_error(code: grpc.StatusCode, details: str, trailing: Metadata | None = None) -> AioRpcError:
    return AioRpcError(code, Metadata(), trailing or Metadata(), details, None)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.DATA_LOSS, 500),
        (grpc.StatusCode.UNKNOWN, 502),
        (grpc.StatusCode.CANCELLED, 502),
    ],
)
def test_status_mapping(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status
    error = from_rpc_error(rpc_error(code, "why"))
    assert error.status == status
    assert error.body() == {"error": "why", "code": code.name}


def test_every_status_code_is_mapped() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)


def test_no_caller_mistake_is_a_5xx() -> None:
    for code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
    ):
        assert 400 <= http_status(code) < 500


def test_retry_after_comes_from_trailing_metadata() -> None:
    error = from_rpc_error(
        rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", Metadata(("retry-after", "30")))
    )
    assert error.status == 429
    assert error.headers == {"Retry-After": "30"}


def test_retry_after_is_left_out_when_absent_or_not_seconds() -> None:
    assert from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "x")).headers == {}
    bad = Metadata(("retry-after", "soon"))
    assert from_rpc_error(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", bad)).headers == {}


def test_a_missing_message_gets_one() -> None:
    assert from_rpc_error(rpc_error(grpc.StatusCode.NOT_FOUND, "")).message == "not found"


def test_transport_failures_do_not_show_internal_addresses() -> None:
    details = "failed to connect to all addresses; last error: ipv4:10.0.0.5:9091: refused"
    error = from_rpc_error(
        rpc_error(grpc.StatusCode.UNAVAILABLE, details), backend="cqrs.command.v1.CommandService"
    )
    assert error.status == 503
    assert "10.0.0.5" not in error.message
    assert error.message == "cqrs.command.v1.CommandService is unavailable; try again later"
    storage = from_rpc_error(rpc_error(grpc.StatusCode.UNAVAILABLE, "storage is down"))
    assert storage.message == "storage is down"


def test_a_401_names_the_bearer_scheme() -> None:
    refused = from_rpc_error(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "invalid token"))
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="cqrs-users"'
    assert "WWW-Authenticate" not in GatewayError(403, "PERMISSION_DENIED", "no").headers
