"""The one call query_svc makes to command_svc: recording a successful login.

The login event goes through the command side like any other change, so it
gets the right stream version (the seed hard-coded version 1 from the query
side). Calls carry the service identity and a deadline (never past the
caller's: :mod:`service_kit.deadlines`).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as pb_grpc

from service_kit import deadlines
from service_kit.metadata import CORRELATION_ID

MetadataFn = Callable[[], list[tuple[str, str]]]


class CommandClient:
    """A thin client of ``CommandService.RecordLogin``."""

    def __init__(self, *, channel: grpc.aio.Channel, metadata: MetadataFn, timeout: float) -> None:
        self._stub = pb_grpc.CommandServiceStub(channel)
        self._metadata = metadata
        self._timeout = timeout

    async def record_login(
        self, *, user_id: str, client_address: str, correlation_id: str = ""
    ) -> int:
        """Appends ``user.login.recorded``; returns its global position.

        Raises ``grpc.aio.AioRpcError`` when command_svc refuses or is unreachable.
        """
        md = list(self._metadata())
        if correlation_id:
            md.append((CORRELATION_ID, correlation_id))
        response = await self._stub.RecordLogin(
            pb.RecordLoginRequest(id=user_id, client_address=client_address),
            metadata=md,
            timeout=deadlines.budget(self._timeout),
        )
        return int(response.position)
