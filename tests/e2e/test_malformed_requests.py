"""Bytes that do not parse as the method's request, sent straight to each gRPC service.

A generic channel call (no serializer: the bytes go out as they are) to a
method of store_svc, command_svc and query_svc is INVALID_ARGUMENT naming
the request type, never UNKNOWN; the service serves a valid call right
after; an anonymous caller of a guarded method is still refused first; a
client stream (AppendStream) answers what it read, then ends with
INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from cqrs.command.v1 import command_pb2
from cqrs.eventstore.v1 import event_store_pb2
from cqrs.query.v1 import query_pb2
from google.protobuf.message import Message

from tests.e2e.support import unique_email
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

# Field 1 with wire type 7, which does not exist: no message parses it.
GARBAGE = b"\x0f\xff\xff\xff"


async def _raw_call(
    port: int, method: str, body: bytes, *, token: str = ""
) -> tuple[grpc.StatusCode, str]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        # No serializers: the bytes go out and come back as they are.
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            await call(body, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize(
    ("service", "method", "request_type", "valid"),
    [
        (
            "query",
            "/cqrs.query.v1.QueryService/GetJwks",
            "cqrs.query.v1.GetJwksRequest",
            query_pb2.GetJwksRequest,
        ),
        (
            "command",
            "/cqrs.command.v1.CommandService/Register",
            "cqrs.command.v1.RegisterRequest",
            lambda: command_pb2.RegisterRequest(
                email=unique_email("raw"), password="SecurePass123!"
            ),
        ),
        (
            "store",
            "/cqrs.eventstore.v1.EventStoreService/CountEvents",
            "cqrs.eventstore.v1.CountEventsRequest",
            event_store_pb2.CountEventsRequest,
        ),
    ],
)
async def test_a_request_that_does_not_parse_is_invalid_argument(
    e2e_system: SystemProcess,
    service: str,
    method: str,
    request_type: str,
    valid: Callable[[], Message],
) -> None:
    port = getattr(e2e_system.ports, f"{service}_grpc")
    token = e2e_system.operator_token() if service == "store" else ""
    code, details = await _raw_call(port, method, GARBAGE, token=token)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert details.startswith(f"request: not a valid {request_type} message"), details
    code, details = await _raw_call(port, method, valid().SerializeToString(), token=token)
    assert code == grpc.StatusCode.OK, (code, details)


async def test_an_anonymous_caller_is_refused_before_the_bytes_are_read(
    e2e_system: SystemProcess,
) -> None:
    code, _ = await _raw_call(
        e2e_system.ports.store_grpc, "/cqrs.eventstore.v1.EventStoreService/CountEvents", GARBAGE
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_client_stream_answers_what_it_read_then_ends_on_the_malformed_message(
    e2e_system: SystemProcess,
) -> None:
    # Well formed but breaking the contract (no append): answered with a failure.
    readable = event_store_pb2.AppendStreamRequest(request_id=7).SerializeToString()

    async def requests() -> AsyncIterator[bytes]:
        yield readable
        yield GARBAGE

    metadata = (("authorization", f"Bearer {e2e_system.operator_token()}"),)
    port = e2e_system.ports.store_grpc
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stream = channel.stream_stream(
            "/cqrs.eventstore.v1.EventStoreService/AppendStream",
            request_serializer=None,
            response_deserializer=None,
        )
        call = stream(requests(), metadata=metadata, timeout=10)
        replies = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async for raw in call:
                replies.append(event_store_pb2.AppendStreamResponse.FromString(raw))
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ended.value.details()
    assert "cqrs.eventstore.v1.AppendStreamRequest" in (ended.value.details() or "")
    assert [(r.request_id, r.WhichOneof("outcome")) for r in replies] == [(7, "failed")]
    # The store still serves.
    code, details = await _raw_call(
        port,
        "/cqrs.eventstore.v1.EventStoreService/CountEvents",
        event_store_pb2.CountEventsRequest().SerializeToString(),
        token=e2e_system.operator_token(),
    )
    assert code == grpc.StatusCode.OK, (code, details)
