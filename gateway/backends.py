"""gRPC channels to the backends and generic calls over them.

One channel per distinct target, opened in the running event loop and
shared by every request; method callables are built from the descriptors
(``channel.unary_unary(path, serializer, deserializer)``), so no generated
stub is needed for a routed RPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from gateway.errors import GatewayError
from gateway.routes import RpcMethod
from service_kit import tracing
from service_kit.leader_channel import leader_channel

# Same limits as the servers (service_kit.server): a 1,000-event page fits.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class Backends:
    """Channels keyed by target, and the service → target table.

    Invariant: after ``close()`` no call is started.
    """

    def __init__(self, targets: Mapping[str, str]) -> None:
        self._targets = dict(targets)
        self._channels: dict[str, grpc.aio.Channel] = {}
        for target in sorted(set(self._targets.values())):
            # Several comma-separated addresses (only the store's may be):
            # a leader and its standby, followed (service_kit.leader_channel).
            self._channels[target] = leader_channel(
                target,
                options=_CHANNEL_OPTIONS,
                interceptors=tracing.client_interceptors("gateway"),
            )
        self._unary: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._stream: dict[str, grpc.aio.UnaryStreamMultiCallable[Any, Any]] = {}
        self._closed = False

    def channel(self, service: str) -> grpc.aio.Channel:
        """The channel to a service; 503 UNAVAILABLE when none is configured."""
        if self._closed:
            raise GatewayError(503, "UNAVAILABLE", "the gateway is shutting down")
        target = self._targets.get(service)
        if target is None:
            raise GatewayError(503, "UNAVAILABLE", f"no backend configured for {service}")
        return self._channels[target]

    def unary(self, rpc: RpcMethod) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        callable_ = self._unary.get(rpc.path)
        if callable_ is None or self._closed:
            callable_ = self.channel(rpc.service).unary_unary(
                rpc.path,
                request_serializer=_serialize,
                response_deserializer=rpc.response_class.FromString,
            )
            self._unary[rpc.path] = callable_
        return callable_

    def stream(self, rpc: RpcMethod) -> grpc.aio.UnaryStreamMultiCallable[Any, Any]:
        callable_ = self._stream.get(rpc.path)
        if callable_ is None or self._closed:
            callable_ = self.channel(rpc.service).unary_stream(
                rpc.path,
                request_serializer=_serialize,
                response_deserializer=rpc.response_class.FromString,
            )
            self._stream[rpc.path] = callable_
        return callable_

    async def close(self) -> None:
        self._closed = True
        for channel in self._channels.values():
            await channel.close(None)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
