"""CommandServiceServicer: request checks, idempotency, tracing, reply mapping.

The decisions live in :mod:`command_svc.handlers`; the request's shape
(a canonical UUID ``id``, password lengths, ...) is the contract's and was
checked by the validation interceptor before a method runs. This module only
- reads ``x-correlation-id`` (a fresh one if missing) and gives each command
  its own id, which becomes the events' causation id,
- applies the optional ``idempotency-key`` (see :mod:`command_svc.idempotency`),
- maps outcomes to replies and errors to statuses
  (:func:`command_svc.errors.to_service_error`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as pb_grpc
from google.protobuf.message import Message

from command_svc.abuse_limits import CALLER_ADDRESS, AbuseLimits, CommandLimits
from command_svc.errors import to_service_error
from command_svc.handlers import CommandHandler
from command_svc.idempotency import IDEMPOTENCY_KEY, IdempotencyCache, check_key, fingerprint
from command_svc.store_client import Trace
from service_kit import deadlines, errors, metadata, tracing
from service_kit.auth import current_principal
from service_kit.client_address import ProxyCheck, client_address

__all__ = ["SERVICE_NAME", "CommandServiceServicer"]

SERVICE_NAME: Final = pb.DESCRIPTOR.services_by_name["CommandService"].full_name

REGISTERED: Final = "User registered successfully"
PASSWORD_CHANGED: Final = "Password changed successfully"
PASSWORD_RESET: Final = "Password reset successfully; every session of the user has ended"
EMAIL_CHANGED: Final = "Email changed successfully"
EMAIL_VERIFIED: Final = "Email verified successfully"
DEACTIVATED: Final = "User deactivated successfully"
ACTIVATED: Final = "User activated successfully"
ERASED: Final = "User's personal data erased"

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Servicer = TypeVar("Servicer", bound="CommandServiceServicer")


def _command(
    fn: Callable[[Servicer, Req, Trace], Awaitable[Resp]],
) -> Callable[[Servicer, Req, Any], Awaitable[Resp]]:
    """Turns ``fn(self, request, trace)`` into a servicer method.

    Adds tracing, idempotency, error mapping and the command's bound
    (``COMMAND_TIMEOUT_SECONDS``, never past the caller's deadline: a command
    that cannot finish in time is UNAVAILABLE, whatever it waited for);
    ``errors.unary`` then turns the ``ServiceError`` into the call's status.
    """
    name = fn.__name__

    @errors.unary
    @functools.wraps(fn)
    async def method(self: Servicer, request: Req, context: Any) -> Resp:
        CALLER_ADDRESS.set(self._client(context))
        async with deadlines.bounded(
            self._command_timeout,
            what=name,
            then="its outcome is unknown: retry it (with the same Idempotency-Key to be safe)",
        ):
            return await run(self, request, context)

    async def run(self: Servicer, request: Req, context: Any) -> Resp:
        try:
            correlation_id, _ = metadata.correlation_ids(context)
            # The command's own id: names it in its events' causation ids.
            trace = Trace(
                correlation_id=correlation_id,
                causation_id=metadata.new_correlation_id(),
                traceparent=tracing.current_traceparent(),
            )
            key = check_key(metadata.get(metadata.call_metadata(context), IDEMPOTENCY_KEY))
            if not key:
                return await fn(self, request, trace)
            principal = current_principal()
            cache_key = (name, principal.subject if principal else "", key)
            digest = fingerprint(request.SerializeToString(deterministic=True))
            result = await self._idempotency.run(
                cache_key, digest, lambda: fn(self, request, trace)
            )
            return result  # type: ignore[return-value]  # the cache holds this method's replies
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            mapped = to_service_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    return method


class CommandServiceServicer(pb_grpc.CommandServiceServicer):
    """Serves CommandService over a :class:`CommandHandler`."""

    def __init__(
        self,
        handler: CommandHandler,
        idempotency: IdempotencyCache[Message] | None = None,
        *,
        command_timeout: float = 10.0,
        limits: CommandLimits | None = None,
        is_proxy: ProxyCheck | None = None,
    ) -> None:
        self._handler = handler
        self._idempotency: IdempotencyCache[Message] = idempotency or IdempotencyCache()
        self._command_timeout = command_timeout
        self._limits = limits or CommandLimits.in_process(AbuseLimits())
        self._is_proxy = is_proxy

    def _client(self, context: Any) -> str:
        return client_address(
            peer=context.peer(),
            invocation_metadata=context.invocation_metadata(),
            trusted_proxies=(),
            is_proxy=self._is_proxy,
        )

    @_command
    async def Register(self, request: pb.RegisterRequest, trace: Trace) -> pb.RegisterResponse:
        principal = current_principal()
        if principal is None or not principal.is_service:  # services are trusted callers
            await self._limits.register(CALLER_ADDRESS.get())
        out = await self._handler.register(
            email=request.email, password=request.password, trace=trace
        )
        return pb.RegisterResponse(
            id=out.user_id, message=REGISTERED, version=out.version, position=out.position
        )

    @_command
    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, trace: Trace
    ) -> pb.ChangePasswordResponse:
        user_id = request.id
        principal = current_principal()
        if principal is not None and principal.is_admin and not request.old_password:
            # An admin without the old password resets it (a user always needs it).
            out = await self._handler.reset_password(
                user_id=user_id,
                new_password=request.new_password,
                actor=principal.subject,
                trace=trace,
            )
            message = PASSWORD_RESET
        else:
            # The user's own session stays signed in (it just proved the old
            # password); an admin's or a service's session is not the user's.
            own = principal is not None and principal.subject == user_id
            # A password check: budgeted before bcrypt runs, like a login.
            await self._limits.password_check(user_id)
            out = await self._handler.change_password(
                user_id=user_id,
                old_password=request.old_password,
                new_password=request.new_password,
                trace=trace,
                keep_session_id=principal.session_id if own and principal else "",
            )
            await self._limits.password_matched(user_id)
            message = PASSWORD_CHANGED
        return pb.ChangePasswordResponse(
            id=user_id, message=message, version=out.version, position=out.position
        )

    @_command
    async def ChangeEmail(
        self, request: pb.ChangeEmailRequest, trace: Trace
    ) -> pb.ChangeEmailResponse:
        user_id = request.id
        out = await self._handler.change_email(
            user_id=user_id, new_email=request.new_email, trace=trace
        )
        return pb.ChangeEmailResponse(
            id=user_id,
            message=EMAIL_CHANGED,
            email=out.state.email,
            version=out.version,
            position=out.position,
        )

    @_command
    async def Deactivate(
        self, request: pb.DeactivateRequest, trace: Trace
    ) -> pb.DeactivateResponse:
        user_id = request.id
        out = await self._handler.deactivate(user_id=user_id, reason=request.reason, trace=trace)
        return pb.DeactivateResponse(
            id=user_id, message=DEACTIVATED, version=out.version, position=out.position
        )

    @_command
    async def RecordLogin(
        self, request: pb.RecordLoginRequest, trace: Trace
    ) -> pb.RecordLoginResponse:
        user_id = request.id
        out = await self._handler.record_login(
            user_id=user_id, client_address=request.client_address, trace=trace
        )
        return pb.RecordLoginResponse(id=user_id, version=out.version, position=out.position)

    @_command
    async def EraseUser(self, request: pb.EraseUserRequest, trace: Trace) -> pb.EraseUserResponse:
        user_id = request.id
        principal = current_principal()
        actor = principal.subject if principal is not None else ""
        out = await self._handler.erase(user_id=user_id, actor=actor, trace=trace)
        return pb.EraseUserResponse(
            id=user_id, message=ERASED, version=out.version, position=out.position
        )

    @_command
    async def Activate(self, request: pb.ActivateRequest, trace: Trace) -> pb.ActivateResponse:
        user_id = request.id
        out = await self._handler.activate(user_id=user_id, reason=request.reason, trace=trace)
        return pb.ActivateResponse(
            id=user_id, message=ACTIVATED, version=out.version, position=out.position
        )

    @_command
    async def IssuePasswordReset(
        self, request: pb.IssuePasswordResetRequest, trace: Trace
    ) -> pb.IssuePasswordResetResponse:
        user_id = request.id
        out = await self._handler.issue_password_reset(user_id=user_id, trace=trace)
        return pb.IssuePasswordResetResponse(id=user_id, version=out.version, position=out.position)

    @_command
    async def ConfirmPasswordReset(
        self, request: pb.ConfirmPasswordResetRequest, trace: Trace
    ) -> pb.ConfirmPasswordResetResponse:
        out = await self._handler.confirm_password_reset(
            token=request.token, new_password=request.new_password, trace=trace
        )
        return pb.ConfirmPasswordResetResponse(
            id=out.user_id, message=PASSWORD_RESET, version=out.version, position=out.position
        )

    @_command
    async def ConfirmEmailVerification(
        self, request: pb.ConfirmEmailVerificationRequest, trace: Trace
    ) -> pb.ConfirmEmailVerificationResponse:
        out = await self._handler.confirm_email_verification(token=request.token, trace=trace)
        return pb.ConfirmEmailVerificationResponse(
            id=out.user_id,
            message=EMAIL_VERIFIED,
            email=out.state.email,
            version=out.version,
            position=out.position,
        )

    @_command
    async def RevokeSessions(
        self, request: pb.RevokeSessionsRequest, trace: Trace
    ) -> pb.RevokeSessionsResponse:
        user_id = request.id
        out = await self._handler.revoke_sessions(
            user_id=user_id,
            session_id=request.session_id,
            every=request.all,
            reason=request.reason,
            trace=trace,
        )
        return pb.RevokeSessionsResponse(id=user_id, version=out.version, position=out.position)
