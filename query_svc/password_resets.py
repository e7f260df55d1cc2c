"""``POST /password-reset``: mail a reset token to an address, telling nobody whether it exists.

The request is answered at once, the same way for every well-formed
address: the lookup and the command that asks for the mail run afterwards,
in the background, so neither the answer nor its timing depends on whether
the address belongs to an account. Only an active account gets a mail
(command_svc's ``IssuePasswordReset`` appends the request; the mailer sends
it). Requests are limited per address and per client
(:mod:`query_svc.request_limits`); a refused request says how long to wait,
also the same for every address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc

import domain
from query_svc.projection import ACTIVE
from query_svc.read_model import AuthRecord
from query_svc.request_limits import RequestLimiter
from service_kit.observability import LIMIT_REFUSALS

__all__ = ["PasswordResets", "TooManyRequests"]

log = logging.getLogger(__name__)


class TooManyRequests(Exception):
    """Over the budget; retry after some seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many password reset requests; retry in {retry_after} seconds")
        self.retry_after = retry_after


class ResetIssuer(Protocol):
    async def issue_password_reset(self, *, user_id: str, correlation_id: str = "") -> int: ...


class AuthByEmail(Protocol):
    async def auth_by_email(self, email: str) -> AuthRecord | None: ...


class PasswordResets:
    """See the module docstring."""

    def __init__(
        self,
        *,
        read_model: AuthByEmail,
        issuer: ResetIssuer,
        per_email: RequestLimiter,
        per_address: RequestLimiter,
        catch_up: Callable[[int], Awaitable[bool]] | None = None,
        applied_position: Callable[[], int] = lambda: 0,
    ) -> None:
        self._read_model = read_model
        self._issuer = issuer
        self._per_email = per_email
        self._per_address = per_address
        self._catch_up = catch_up
        self._applied_position = applied_position
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(self, *, email: str, client_address: str, correlation_id: str = "") -> None:
        """Validates and counts the request, then looks it up in the background."""
        if not email.strip():
            raise domain.ValidationError("email", "is required")
        normalized = domain.normalize_email(email)
        wait = await self._per_email.acquire(normalized)
        if not wait and client_address:
            wait = await self._per_address.acquire(client_address)
        if wait:
            LIMIT_REFUSALS.labels("password_reset").inc()
            raise TooManyRequests(wait)
        task = asyncio.create_task(self._issue(normalized, correlation_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _issue(self, email: str, correlation_id: str) -> None:
        try:
            seen = self._applied_position()
            record = await self._read_model.auth_by_email(email)
            if record is None and self._catch_up is not None and await self._catch_up(seen):
                record = await self._read_model.auth_by_email(email)  # registered just now
            if record is None or record.status != ACTIVE:
                return
            await self._issuer.issue_password_reset(
                user_id=record.user_id, correlation_id=correlation_id
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("password reset request failed: %s %s", exc.code().name, exc.details())
        except Exception:
            log.exception("password reset request failed")

    async def stop(self) -> None:
        """Cancels the lookups still running."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settled(self) -> None:
        """Waits for the lookups in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
