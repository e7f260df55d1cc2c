"""Login: check email and password against the read model, open a session, issue tokens.

Invariants:
- Unknown email, malformed email, wrong password and deactivated account
  all fail with the same UNAUTHENTICATED message, after one bcrypt
  verification each (a dummy one when there is no hash to check), so
  neither the answer nor its timing tells whether an account exists.
- bcrypt runs off the event loop (:class:`~service_kit.passwords.PasswordHasher`).
- Every attempt is reserved against the login budgets
  (:mod:`query_svc.login_attempts`) *before* any hashing and settled after:
  one over budget is refused with
  :class:`~query_svc.login_attempts.TooManyAttempts`, and simultaneous
  guesses cannot all be evaluated.
- A repeat login of one account from one address within a short window
  appends no ``user.login.recorded`` event (the budget says which to record).
- A successful login opens a session (:mod:`query_svc.sessions`): the access
  token carries its id (``sid``) and the user's credential version as the
  read model has it (``cv``), and a refresh token comes with it.
- Recording the login (command_svc ``RecordLogin``) is best effort: if it
  fails, the login still succeeds and the failure is logged.
- Read your own registration: before a login is failed, the read model is
  brought up to the store's head (bounded wait) and checked once more, so a
  login right after registering (or after a password change) succeeds
  without the client passing a position, and the lag never counts as a
  failure against the rate limits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

import grpc

import domain
from query_svc.login_attempts import Reservation
from query_svc.projection import ACTIVE
from query_svc.read_model import AuthRecord, UserView
from query_svc.sessions import Opened
from service_kit.auth import Principal, TokenSigner
from service_kit.errors import ServiceError, invalid
from service_kit.observability import LOGIN_FAILURES
from service_kit.passwords import PasswordHasher
from service_kit.timeconv import utcnow

log = logging.getLogger(__name__)

INVALID_CREDENTIALS: Final = "invalid email or password"
# Longer inputs cannot be a valid password (the policy allows 128 characters);
# they are failed without hashing megabytes.
_MAX_PASSWORD_INPUT: Final = domain.MAX_PASSWORD_LENGTH
_MAX_EMAIL_KEY: Final = domain.MAX_EMAIL_LENGTH + 1


class LoginReads(Protocol):
    """The two reads a login needs (:class:`~query_svc.read_model.ReadModel` has them)."""

    async def auth_by_email(self, email: str) -> AuthRecord | None: ...

    async def get_user(self, user_id: str) -> UserView | None: ...


class SessionOpener(Protocol):
    """Opens a session (:class:`~query_svc.sessions.SessionStore` does)."""

    @property
    def refresh_ttl(self) -> timedelta: ...

    async def open(self, *, user_id: str, cv: int, client_address: str) -> Opened: ...


class AttemptBudget(Protocol):
    """Reserves and settles attempts (:class:`~query_svc.login_attempts.LoginAttempts`)."""

    async def reserve(self, *, email: str, address: str) -> Reservation: ...

    async def failed(self, attempt: Reservation) -> None: ...

    async def succeeded(self, attempt: Reservation) -> bool: ...


class LoginRecorder(Protocol):
    """Records a successful login as an event (command_svc's RecordLogin)."""

    async def record_login(
        self, *, user_id: str, client_address: str, correlation_id: str = ""
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class LoginResult:
    """The tokens of a new session, their lifetimes in seconds, and the user."""

    token: str
    expires_in: int
    user: UserView
    session_id: str
    refresh_token: str = field(repr=False)
    refresh_expires_in: int


class LoginService:
    """Checks credentials and issues tokens (see the module docstring)."""

    def __init__(
        self,
        *,
        read_model: LoginReads,
        hasher: PasswordHasher,
        codec: TokenSigner,
        sessions: SessionOpener,
        attempts: AttemptBudget,
        recorder: LoginRecorder,
        clock: Callable[[], datetime] = utcnow,
        catch_up: Callable[[int], Awaitable[bool]] | None = None,
        applied_position: Callable[[], int] = lambda: 0,
    ) -> None:
        self._read_model = read_model
        self._hasher = hasher
        self._codec = codec
        self._sessions = sessions
        self._attempts = attempts
        self._recorder = recorder
        self._clock = clock
        self._catch_up = catch_up
        self._applied_position = applied_position

    async def login(
        self, *, email: str, password: str, client_address: str, correlation_id: str = ""
    ) -> LoginResult:
        """Logs in; raises UNAUTHENTICATED, INVALID_ARGUMENT or ``TooManyAttempts``."""
        if not email.strip():
            raise invalid("email", "required")
        if not password:
            raise invalid("password", "required")
        key = email.strip().lower()[:_MAX_EMAIL_KEY]
        attempt = await self._attempts.reserve(email=key, address=client_address)
        try:
            seen = self._applied_position()  # what the first check can have seen, at least
            record, ok = await self._check(email, password)
            if not ok and self._catch_up is not None and await self._catch_up(seen):
                # The read model may just have lagged (a registration or password
                # change milliseconds ago): check again against the caught-up rows.
                record, ok = await self._check(email, password)
        except BaseException:
            # Cancelled or a dependency failed: the guess may have been judged;
            # it keeps counting as a failure.
            with contextlib.suppress(Exception):
                await self._attempts.failed(attempt)
            raise
        if record is None or not ok:
            await self._attempts.failed(attempt)
            LOGIN_FAILURES.labels("invalid_credentials").inc()
            raise ServiceError(grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS)
        record_it = await self._attempts.succeeded(attempt)

        user = await self._read_model.get_user(record.user_id)
        if user is None:  # the two rows commit together; only a swap race gets here
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "read model is changing; retry")
        opened = await self._sessions.open(
            user_id=record.user_id, cv=record.credential_version, client_address=client_address
        )
        principal = Principal(
            subject=record.user_id,
            email=record.email,
            role=record.role,
            session_id=opened.session.id,
            credential_version=record.credential_version,
        )
        token, expires_in = self._codec.issue(principal, now=self._clock())
        if record_it:
            await self._record(record.user_id, client_address, correlation_id)
        return LoginResult(
            token=token,
            expires_in=expires_in,
            user=user,
            session_id=opened.session.id,
            refresh_token=opened.refresh_token,
            refresh_expires_in=int(self._sessions.refresh_ttl.total_seconds()),
        )

    async def _check(self, email: str, password: str) -> tuple[AuthRecord | None, bool]:
        """The account and whether the password opens it (one bcrypt run either way)."""
        record = None
        with contextlib.suppress(domain.ValidationError):  # malformed: just a failed login
            record = await self._read_model.auth_by_email(domain.normalize_email(email))
        if record is None or len(password) > _MAX_PASSWORD_INPUT:
            await self._hasher.dummy_verify()
            return record, False
        matches = await self._hasher.verify(password, record.password_hash)
        return record, matches and record.status == ACTIVE

    async def _record(self, user_id: str, client_address: str, correlation_id: str) -> None:
        try:
            await self._recorder.record_login(
                user_id=user_id, client_address=client_address, correlation_id=correlation_id
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "login of %s succeeded but RecordLogin failed: %s %s",
                user_id,
                exc.code().name,
                exc.details(),
            )
        except Exception:
            log.exception("login of %s succeeded but RecordLogin failed", user_id)
