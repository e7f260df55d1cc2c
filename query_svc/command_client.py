"""The calls query_svc makes to command_svc: recording a login, ending sessions,
asking for a password reset mail.

These events go through the command side like any other change, so they
get the right stream version (the seed hard-coded version 1 from the query
side). Calls carry the service identity and a deadline (never past the
caller's: :mod:`service_kit.deadlines`), and raise ``grpc.aio.AioRpcError``
when command_svc refuses or is unreachable.
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
    """A thin client of the service-only CommandService methods."""

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
        response = await self._stub.RecordLogin(
            pb.RecordLoginRequest(id=user_id, client_address=client_address),
            metadata=self._call_metadata(correlation_id),
            timeout=deadlines.budget(self._timeout),
        )
        return int(response.position)

    def _call_metadata(self, correlation_id: str) -> list[tuple[str, str]]:
        md = list(self._metadata())
        if correlation_id:
            md.append((CORRELATION_ID, correlation_id))
        return md

    async def revoke_sessions(
        self,
        *,
        user_id: str,
        session_id: str = "",
        every: bool = False,
        reason: str,
        correlation_id: str = "",
    ) -> int:
        """Appends ``user.session.revoked`` (or ``user.sessions.revoked`` with ``every``)."""
        response = await self._stub.RevokeSessions(
            pb.RevokeSessionsRequest(id=user_id, session_id=session_id, all=every, reason=reason),
            metadata=self._call_metadata(correlation_id),
            timeout=deadlines.budget(self._timeout),
        )
        return int(response.position)

    async def issue_password_reset(self, *, user_id: str, correlation_id: str = "") -> int:
        """Appends ``user.password_reset.requested``; the mailer sends its token."""
        response = await self._stub.IssuePasswordReset(
            pb.IssuePasswordResetRequest(id=user_id),
            metadata=self._call_metadata(correlation_id),
            timeout=deadlines.budget(self._timeout),
        )
        return int(response.position)
