"""Rich error details over a real gRPC call: written by service_kit.errors, read by
service_kit.error_details and turned into HTTP by the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from gateway.errors import from_rpc_error
from service_kit import errors, metadata
from service_kit.dependency_errors import Dependency
from service_kit.error_details import (
    DEPENDENCY_UNAVAILABLE,
    DOMAIN,
    RATE_LIMITED,
    FieldViolation,
    read,
)
from service_kit.errors import ServiceError, invalid_fields, rate_limited

pytestmark = pytest.mark.unit

_FAILURES: dict[str, Callable[[], Exception]] = {
    "invalid": lambda: invalid_fields(
        [
            FieldViolation("email", "must be a valid email address", "string.email"),
            FieldViolation("password", "must be at least 8 characters", "string.min_len"),
        ]
    ),
    "limited": lambda: rate_limited("too many failed logins; retry in 3 seconds", 2.5),
    "down": lambda: Dependency("read model database", "PostgreSQL at db:5432").unavailable(
        "it is starting up", retry_in=4.2
    ),
    "plain": lambda: ServiceError(grpc.StatusCode.NOT_FOUND, "user x not found"),
    "stalled": lambda: ServiceError(grpc.StatusCode.UNAVAILABLE, "min_position: stalled; retry"),
}


@pytest.fixture(scope="module")
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    """A server whose method /test.Fail/<name> fails with _FAILURES[name] through
    service_kit.errors (the path every servicer's error takes)."""

    def handler(name: str) -> grpc.RpcMethodHandler[Any, Any]:
        @errors.unary
        async def fail(self: object, request: bytes, context: Any) -> bytes:
            raise _FAILURES[name]()

        async def call(request: bytes, context: Any) -> bytes:
            return await fail(None, request, context)

        return grpc.unary_unary_rpc_method_handler(call)

    generic = grpc.method_handlers_generic_handler(
        "test.Fail", {name: handler(name) for name in _FAILURES}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(0)


async def _failure(channel: grpc.aio.Channel, name: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channel.unary_unary(f"/test.Fail/{name}", None, None)(b"", timeout=5)
    return caught.value


async def test_every_invalid_field_travels_as_bad_request(channel: grpc.aio.Channel) -> None:
    error = await _failure(channel, "invalid")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "email: must be a valid email address; password: must be at least 8 characters"
    )
    details = read(error)
    assert [(v.field, v.reason) for v in details.violations] == [
        ("email", "string.email"),
        ("password", "string.min_len"),
    ]
    http = from_rpc_error(error)
    assert http.status == 400
    assert http.body()["violations"] == [
        {"field": "email", "description": "must be a valid email address"},
        {"field": "password", "description": "must be at least 8 characters"},
    ]


async def test_a_rate_limit_says_when_to_retry(channel: grpc.aio.Channel) -> None:
    error = await _failure(channel, "limited")
    details = read(error)
    assert (details.reason, details.retry_after) == (RATE_LIMITED, 2.5)
    assert metadata.get(error.trailing_metadata(), "retry-after") == "3"
    http = from_rpc_error(error)
    assert (http.status, http.headers) == (429, {"Retry-After": "3"})
    assert "violations" not in http.body()


async def test_an_outage_names_its_dependency(channel: grpc.aio.Channel) -> None:
    error = await _failure(channel, "down")
    details = read(error)
    assert details.reason == DEPENDENCY_UNAVAILABLE
    assert details.metadata == {"dependency": "read model database"}
    assert details.retry_after == 4.2
    http = from_rpc_error(error)
    assert (http.status, http.headers["Retry-After"]) == (503, "5")
    assert DOMAIN == "cqrs-users"


async def test_a_status_without_details_reads_empty(channel: grpc.aio.Channel) -> None:
    error = await _failure(channel, "plain")
    assert not read(error)
    http = from_rpc_error(error)
    assert (http.status, http.headers, http.body()) == (
        404,
        {},
        {"error": "user x not found", "code": "NOT_FOUND"},
    )


async def test_every_unavailable_says_when_to_retry(channel: grpc.aio.Channel) -> None:
    error = await _failure(channel, "stalled")
    assert read(error).retry_after == 1.0
    assert from_rpc_error(error).headers == {"Retry-After": "1"}
