"""What a standby store (``STORE_STANDBY=1``) answers while it waits for the writer lease.

It listens on its own address from the start, so that clients given both
addresses (``service_kit.leader_channel``) get a fast, explicit answer rather
than a refused connection: every call, health checks included, fails
UNAVAILABLE with a message saying this store is a standby and why (the
writer lock's holder). Clients then move on to the next address. Once the
lease is ours this server stops and the real one binds the same address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["STANDBY_PREFIX", "StandbyServer"]

# The start of every answer of a waiting standby (compose's health check reads it).
STANDBY_PREFIX = "standby store"


if TYPE_CHECKING:  # generic in the type stubs only
    _Handler = grpc.GenericRpcHandler[bytes, bytes]
else:
    _Handler = grpc.GenericRpcHandler


class _Refuse(_Handler):
    """Any method: UNAVAILABLE with the standby's reason."""

    def __init__(self) -> None:
        self.reason = "waiting for the writer lease"

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        # A stream-stream handler fits every method on the wire: it reads no
        # request and ends the call with a status only.
        return grpc.stream_stream_rpc_method_handler(self._refuse)

    async def _refuse(
        self, _requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await context.abort(
            grpc.StatusCode.UNAVAILABLE,
            f"{STANDBY_PREFIX}: not the leader ({self.reason}); the leader serves",
        )
        yield b""  # pragma: no cover  (abort raises; this makes it a generator)


class StandbyServer:
    """The refusing server of a waiting standby, on the store's own address."""

    def __init__(self, address: str) -> None:
        self._handler = _Refuse()
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._server.add_generic_rpc_handlers([self._handler])
        if self._server.add_insecure_port(address) == 0:
            raise OSError(f"cannot listen on {address} (STORE_GRPC_LISTEN)")

    def waiting_because(self, reason: str) -> None:
        """The reason callers are told (e.g. who holds the writer lock)."""
        self._handler.reason = reason

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        # With a grace period: a call cut by a hard stop can end INTERNAL on the
        # client ("Internal error from Core"), which is no cue to try elsewhere.
        await self._server.stop(1.0)
