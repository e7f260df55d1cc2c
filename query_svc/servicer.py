"""The QueryService gRPC servicer: read-your-writes waits, mapping.

The request's shape (ids, page sizes, positions) is the contract's, checked
by the validation interceptor before a method runs.

Reads answer from the read model. A read may ask for ``min_position`` (the
request field or ``x-min-position`` metadata, the larger wins): it waits
until the projector has applied that position, at most ``wait_timeout``
seconds (one second at most for an anonymous caller: a login; never past
the caller's deadline), else UNAVAILABLE saying how
far the read model is: a retryable answer, not a stale one. When the
projector is known to be stalled (:meth:`Projector.stall`: its source or
database is down, or it has not moved while the store is ahead) the wait
gives up at once, or as soon as that is known, with UNAVAILABLE saying why.
Login honours the metadata form too (its request has no such field), so a
client can log in right after registering.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import grpc
from cqrs.query.v1 import query_pb2 as pb
from cqrs.query.v1 import query_pb2_grpc as pb_grpc

from query_svc import page_tokens
from query_svc.convert import PB_TO_STATUS, login_to_pb, session_to_pb, user_to_pb
from query_svc.login import LoginService
from query_svc.login_attempts import TooManyAttempts
from query_svc.page_tokens import LoginsCursor, UsersCursor
from query_svc.password_resets import PasswordResets, TooManyRequests
from query_svc.projector import Projector, Stall
from query_svc.read_model import ReadModel
from query_svc.rebuilder import Rebuilder
from query_svc.session_service import SessionService
from service_kit import deadlines, errors, keys, metadata
from service_kit.auth import current_principal
from service_kit.client_address import ProxyCheck, client_address
from service_kit.errors import ServiceError, invalid, rate_limited
from service_kit.keys import TrustedKey

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["QueryService"].full_name
MIN_POSITION_METADATA: Final = "x-min-position"
DEFAULT_PAGE: Final = 100
RESET_REQUESTED: Final = (
    "If the address belongs to an active account, a password reset token is on its way to it."
)


def _not_found(user_id: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, f"user {user_id} not found")


def stalled(stall: Stall, target: int, *, what: str = "min_position") -> ServiceError:
    """UNAVAILABLE for a read (or a login) that needs ``target`` while the projector is stuck."""
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        f"{what}: {stall.describe()}; position {target} cannot be reached now; retry later",
    )


class QueryServicer(pb_grpc.QueryServiceServicer):
    """Serves QueryService over the read model, the login service and the rebuilder."""

    def __init__(
        self,
        *,
        read_model: ReadModel,
        projector: Projector,
        login: LoginService,
        rebuilder: Rebuilder,
        wait_timeout: float,
        trusted_proxies: tuple[str, ...],
        is_proxy: ProxyCheck | None = None,
        sessions: SessionService,
        resets: PasswordResets,
        trusted_keys: Callable[[], Mapping[str, TrustedKey]],
        token_ttl: int,
        login_timeout: float = 10.0,
    ) -> None:
        self._read_model = read_model
        self._projector = projector
        self._login = login
        self._rebuilder = rebuilder
        self._wait_timeout = wait_timeout
        self._login_timeout = login_timeout
        self._trusted = trusted_proxies
        self._is_proxy = is_proxy
        self._sessions = sessions
        self._resets = resets
        self._trusted_keys = trusted_keys
        self._token_ttl = token_ttl

    def _client(self, context: Any) -> str:
        return client_address(
            peer=context.peer(),
            invocation_metadata=context.invocation_metadata(),
            trusted_proxies=self._trusted,
            is_proxy=self._is_proxy,
        )

    async def _await_position(self, requested: int, context: Any) -> None:
        raw = metadata.get(metadata.call_metadata(context), MIN_POSITION_METADATA).strip()
        from_metadata = 0
        if raw:
            if not raw.isdigit() or len(raw) > 19:
                raise invalid(MIN_POSITION_METADATA, f"{raw[:32]!r} is not a position")
            from_metadata = int(raw)
        target = max(requested, from_metadata)
        if target <= self._projector.applied_position:
            return
        # An anonymous caller (a login) holds the call for less: anyone can send one.
        longest = self._wait_timeout if current_principal() else min(self._wait_timeout, 1.0)
        timeout = deadlines.budget(longest)
        reached = await self._projector.wait_unless_stalled(target, within=timeout)
        if isinstance(reached, Stall):
            raise stalled(reached, target)
        if not reached:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                f"min_position: the read model has applied position "
                f"{self._projector.applied_position}, not yet {target} "
                f"(waited {timeout:.1f}s); retry later",
            )

    @errors.unary
    async def ListUsers(self, request: pb.ListUsersRequest, context: Any) -> pb.ListUsersResponse:
        size = request.page_size or DEFAULT_PAGE
        status_filter = int(request.status)
        # A defined value (the contract's rule); each has its word in PB_TO_STATUS.
        status = PB_TO_STATUS[status_filter] if status_filter else None
        after = (
            page_tokens.decode_users(request.page_token, status=status_filter)
            if request.page_token
            else None
        )
        await self._await_position(request.min_position, context)
        page = await self._read_model.list_users(limit=size, after=after, status=status)
        token = ""
        if page.more and page.rows:
            last = page.rows[-1]
            token = page_tokens.encode_users(
                UsersCursor(created_at=last.created_at, id=last.id, status=status_filter)
            )
        return pb.ListUsersResponse(
            users=[user_to_pb(u) for u in page.rows], count=len(page.rows), next_page_token=token
        )

    @errors.unary
    async def GetUser(self, request: pb.GetUserRequest, context: Any) -> pb.GetUserResponse:
        user_id = request.id
        await self._await_position(request.min_position, context)
        user = await self._read_model.get_user(user_id)
        if user is None:
            raise _not_found(user_id)
        return pb.GetUserResponse(user=user_to_pb(user))

    @errors.unary
    async def GetLoginHistory(
        self, request: pb.GetLoginHistoryRequest, context: Any
    ) -> pb.GetLoginHistoryResponse:
        user_id = request.id
        size = request.page_size or DEFAULT_PAGE
        after = (
            page_tokens.decode_logins(request.page_token, user_id=user_id)
            if request.page_token
            else None
        )
        await self._await_position(request.min_position, context)
        if await self._read_model.get_user(user_id) is None:
            raise _not_found(user_id)
        page = await self._read_model.login_history(user_id=user_id, limit=size, after=after)
        token = ""
        if page.more and page.rows:
            last = page.rows[-1]
            token = page_tokens.encode_logins(
                LoginsCursor(login_at=last.login_at, id=last.id, user_id=user_id)
            )
        return pb.GetLoginHistoryResponse(
            id=user_id,
            logins=[login_to_pb(x) for x in page.rows],
            count=len(page.rows),
            next_page_token=token,
        )

    @errors.unary
    async def Login(self, request: pb.LoginRequest, context: Any) -> pb.LoginResponse:
        # Bounded as a whole (QUERY_LOGIN_TIMEOUT_MS): its database reads, bcrypt,
        # the catch-up wait and RecordLogin each see what is left of it.
        async with deadlines.bounded(self._login_timeout, what="login"):
            return await self._login_call(request, context)

    async def _login_call(self, request: pb.LoginRequest, context: Any) -> pb.LoginResponse:
        # Only the metadata form: a client that just registered can wait for
        # its user.created position before its first login.
        await self._await_position(0, context)
        address = self._client(context)
        correlation, _ = metadata.correlation_ids(context)
        try:
            result = await self._login.login(
                email=request.email,
                password=request.password,
                client_address=address,
                correlation_id=correlation,
            )
        except TooManyAttempts as exc:
            raise rate_limited(str(exc), exc.retry_after) from None
        return pb.LoginResponse(
            token=result.token,
            token_type="Bearer",
            expires_in=result.expires_in,
            user=user_to_pb(result.user),
            refresh_token=result.refresh_token,
            refresh_expires_in=result.refresh_expires_in,
            session_id=result.session_id,
        )

    @errors.unary
    async def RefreshToken(
        self, request: pb.RefreshTokenRequest, context: Any
    ) -> pb.RefreshTokenResponse:
        correlation, _ = metadata.correlation_ids(context)
        refreshed = await self._sessions.refresh(
            request.refresh_token.strip(), correlation_id=correlation
        )
        return pb.RefreshTokenResponse(
            token=refreshed.token,
            token_type="Bearer",
            expires_in=refreshed.expires_in,
            refresh_token=refreshed.refresh_token,
            refresh_expires_in=refreshed.refresh_expires_in,
            session_id=refreshed.session_id,
        )

    @errors.unary
    async def Logout(self, request: pb.LogoutRequest, context: Any) -> pb.LogoutResponse:
        principal = current_principal()
        assert principal is not None  # Access.AUTHENTICATED
        correlation, _ = metadata.correlation_ids(context)
        ended, position = await self._sessions.logout(
            principal, every=request.all, correlation_id=correlation
        )
        message = "Logged out of every session" if request.all else "Logged out"
        return pb.LogoutResponse(message=message, sessions_revoked=ended, position=position)

    @errors.unary
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Any
    ) -> pb.ListSessionsResponse:
        user_id = request.id
        if await self._read_model.get_user(user_id) is None:
            raise _not_found(user_id)
        principal = current_principal()
        current = principal.session_id if principal is not None else ""
        listed = await self._sessions.list(user_id)
        return pb.ListSessionsResponse(
            id=user_id,
            sessions=[session_to_pb(s, current=current) for s in listed],
            count=len(listed),
        )

    @errors.unary
    async def GetJwks(self, request: pb.GetJwksRequest, context: Any) -> pb.GetJwksResponse:
        found = keys.jwks(
            self._trusted_keys(),
            keys.USER_TOKEN_ISSUER,
            now=time.time(),
            max_token_ttl=self._token_ttl,
        )
        return pb.GetJwksResponse(keys=[pb.JsonWebKey(**key) for key in found])

    @errors.unary
    async def RequestPasswordReset(
        self, request: pb.RequestPasswordResetRequest, context: Any
    ) -> pb.RequestPasswordResetResponse:
        correlation, _ = metadata.correlation_ids(context)
        try:
            await self._resets.request(
                email=request.email,
                client_address=self._client(context),
                correlation_id=correlation,
            )
        except TooManyRequests as exc:
            raise rate_limited(str(exc), exc.retry_after) from None
        return pb.RequestPasswordResetResponse(message=RESET_REQUESTED)

    @errors.streaming
    async def RebuildReadModel(
        self, request: pb.RebuildReadModelRequest, context: Any
    ) -> AsyncIterator[pb.RebuildReadModelResponse]:
        async for p in self._rebuilder.run():
            yield pb.RebuildReadModelResponse(
                done=p.done,
                total=p.total,
                rate=p.rate,
                eta_seconds=p.eta_seconds,
                finished=p.finished,
            )
