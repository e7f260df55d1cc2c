"""The command handling loop: load, decide, append, retry on a concurrent change.

For every command:
1. cheap validation first (``domain.normalize_email``, ``validate_password``,
   ``validate_password_change``), so a malformed request never costs a bcrypt;
2. take the user from the aggregate cache (``command_svc.aggregate_cache``),
   or load it (snapshot + newer events) and cache it; build the domain
   command, hashing/verifying passwords off the event loop (``PasswordHasher``);
3. ``domain.decide(state, command, now=clock())``; if that (or the command's
   own checks) refuses a *cached* state, drop the entry, load the user from
   the store and decide once more: only a refusal of the store's state
   reaches the caller. This second decision is part of the same attempt;
4. append with the version decided against (``exact``; "no stream" for a
   registration) and fresh uuid4 event ids, then cache the new state at the
   version the store returned;
5. if the store says the stream moved (ABORTED), drop the cache entry, reload
   and go to 2, at most ``max_attempts`` times in all with a little random
   jitter between tries, then fail with ABORTED. The first ABORTED of a
   decision made on a cached state is not counted and not paused for: it
   says the cache was behind, not that writers are racing. The pause before retry n is
   random in [0, retry_pause * 2**(n-1)] (10, 20, 40, 80 ms by default):
   "full jitter" exponential backoff, which spreads competing writers apart
   fastest.

A registration never reads the cache (its fresh uuid4 has no stream); the
new user is cached once appended.

Invariants: nothing is appended unless ``decide`` accepted the command
against the exact version appended at, so a stale cache entry can cost an
ABORTED and a reload but never a wrong event; no refusal is reported from a
cached state; a password hash is computed at most once per command and an
old password verified at most once per stored hash, however many retries
and reloads there are.

An email held by another user is ALREADY_EXISTS with the field named
(``email: already registered`` / ``new_email: already registered``) and never
says who holds it.

Deactivations also take a claim that serialises them
(``command_svc.admin_roster``): a deactivation refused for that claim was
beaten by another one, and is decided again like a concurrent change.

One-time mail tokens (``service_kit.mail_tokens``): a reset or verification
token that is malformed, unknown, wrong, expired or used is always
``InvalidToken`` ("token: invalid, expired or already used"), whoever it
names; a new password is hashed only once a reset token matched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc

import domain
from command_svc.admin_roster import AdminRoster
from command_svc.aggregate_cache import AggregateCache
from command_svc.errors import ClaimConflict, StoreConflict
from command_svc.store_client import Claims, EventStorePort, Trace
from service_kit.errors import ServiceError
from service_kit.mail_tokens import MailTokens, TokenLifetimes, parse_token, token_hash
from service_kit.timeconv import utcnow

__all__ = ["CommandHandler", "Outcome", "PasswordHashing"]

log = logging.getLogger(__name__)

ALREADY_REGISTERED = "already registered"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a successful command did: the user's new version and state, and the
    global position of the last appended event."""

    user_id: str
    version: int
    position: int
    state: domain.UserState


class PasswordHashing(Protocol):
    """What the handlers need of ``service_kit.passwords.PasswordHasher``."""

    async def hash(self, plain: str) -> str: ...

    async def verify(self, plain: str, hashed: str) -> bool: ...


BuildCommand = Callable[[domain.UserState | None], Awaitable[domain.Command]]


def _new_uuid() -> str:
    return str(uuid.uuid4())


class CommandHandler:
    """Runs commands against the event store (see the module docstring)."""

    def __init__(
        self,
        *,
        store: EventStorePort,
        hasher: PasswordHashing,
        max_attempts: int = 5,
        clock: Callable[[], datetime] = utcnow,
        new_id: Callable[[], str] = _new_uuid,
        retry_pause: float = 0.01,
        cache: AggregateCache | None = None,
        mail_tokens: MailTokens | None = None,
        lifetimes: TokenLifetimes | None = None,
    ) -> None:
        """``cache``: the aggregate cache to use; None runs without one (every
        command loads from the store). ``mail_tokens``: derives one-time mail
        tokens; without it reset and verification commands are UNAVAILABLE."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._store = store
        self._hasher = hasher
        self._max_attempts = max_attempts
        self._clock = clock
        self._new_id = new_id
        self._retry_pause = retry_pause
        self._cache = cache if cache is not None else AggregateCache(0)
        self._mail_tokens = mail_tokens
        self._lifetimes = lifetimes or TokenLifetimes()
        self.roster = AdminRoster(store)

    def _tokens(self) -> MailTokens:
        if self._mail_tokens is None:
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "one-time mail tokens are not set up")
        return self._mail_tokens

    # -- commands ------------------------------------------------------------

    async def register(
        self, *, email: str, password: str, trace: Trace, role: str = domain.ROLE_USER
    ) -> Outcome:
        """Registers a new user with a fresh uuid4 id."""
        normalized = domain.normalize_email(email)
        domain.validate_password(password)
        domain.validate_role(role)
        user_id = self._new_id()
        password_hash = await self._hasher.hash(password)

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.RegisterUser(
                user_id=user_id,
                email=normalized,
                password=password,
                password_hash=password_hash,
                role=role,
            )

        return await self._run(user_id, build, trace, new_stream=True, claim_field="email")

    async def change_password(
        self,
        *,
        user_id: str,
        old_password: str,
        new_password: str,
        trace: Trace,
        keep_session_id: str = "",
    ) -> Outcome:
        """Changes the password if ``old_password`` matches the stored hash.

        Every session of the user ends but ``keep_session_id``: the caller's
        own session when the caller is the user (``domain.sessions``).

        A wrong old password is ``InvalidCredentials("old_password")``, which
        the service reports as INVALID_ARGUMENT "old_password: does not match"
        (HTTP 400): the caller is authenticated, the argument is wrong.
        """
        domain.validate_password_change(old_password, new_password)
        verdicts: dict[str, bool] = {}  # stored hash -> does old_password match it
        new_hash: list[str] = []

        async def build(state: domain.UserState | None) -> domain.Command:
            state = _require_active(state, user_id)
            matches = verdicts.get(state.password_hash)
            if matches is None:
                matches = await self._hasher.verify(old_password, state.password_hash)
                verdicts[state.password_hash] = matches
            if not matches:
                # Refuse before hashing the new password: no bcrypt wasted.
                raise domain.InvalidCredentials("old_password")
            if not new_hash:
                new_hash.append(await self._hasher.hash(new_password))
            return domain.ChangePassword(
                old_password=old_password,
                new_password=new_password,
                old_password_matches=True,
                new_password_hash=new_hash[0],
                keep_session_id=keep_session_id,
            )

        return await self._run(user_id, build, trace)

    async def change_email(self, *, user_id: str, new_email: str, trace: Trace) -> Outcome:
        """Changes the email; the new one must not be another user's."""
        normalized = domain.normalize_email(new_email, field="new_email")

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.ChangeEmail(normalized)

        return await self._run(user_id, build, trace, claim_field="new_email")

    async def deactivate(self, *, user_id: str, reason: str, trace: Trace) -> Outcome:
        """Deactivates the user, unless it is the last active admin.

        The deactivation count is read before the other admins' states, and
        the append takes the claim it names (see ``command_svc.admin_roster``).
        """
        claim: list[tuple[str, str]] = []

        async def build(state: domain.UserState | None) -> domain.Command:
            before = await self.roster.deactivations()
            last = False
            if state is not None and state.role == domain.ROLE_ADMIN and state.is_active:
                last = not await self.roster.another_active_admin(user_id)
            claim[:] = [(domain.DEACTIVATION_CLAIM_NAMESPACE, domain.deactivation_claim(before))]
            return domain.Deactivate(reason, last_active_admin=last)

        return await self._run(user_id, build, trace, claims=lambda: claim, claim_is_race=True)

    async def erase(self, *, user_id: str, actor: str, trace: Trace) -> Outcome:
        """Erases the user's personal data (``user.erased``; the store shreds the key).

        An active admin is erased only if another admin is active, under the
        same claim as a deactivation (``command_svc.admin_roster``). Erasing an
        erased user appends nothing and answers its current version with
        position 0 (idempotent).
        """
        claim: list[tuple[str, str]] = []

        async def build(state: domain.UserState | None) -> domain.Command:
            last = False
            claim.clear()
            if state is not None and state.role == domain.ROLE_ADMIN and state.is_active:
                before = await self.roster.deactivations()
                last = not await self.roster.another_active_admin(user_id)
                claim.append(
                    (domain.DEACTIVATION_CLAIM_NAMESPACE, domain.deactivation_claim(before))
                )
            return domain.EraseUser(actor, last_active_admin=last)

        try:
            out = await self._run(user_id, build, trace, claims=lambda: claim, claim_is_race=True)
        except domain.AlreadyErased:
            state, version = await self._load(user_id, new_stream=False)
            assert state is not None  # _load raises for a missing user
            return Outcome(user_id, version, 0, state)
        # The folded state still holds the address the event released: keep
        # no copy of it; the next command reloads the erased state.
        self._cache.discard(user_id, out.version)
        return out

    async def activate(self, *, user_id: str, reason: str, trace: Trace) -> Outcome:
        """Reactivates a deactivated user."""

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.Reactivate(reason)

        return await self._run(user_id, build, trace)

    async def reset_password(
        self, *, user_id: str, new_password: str, actor: str, trace: Trace
    ) -> Outcome:
        """An admin (``actor``) sets the password without the old one."""
        domain.validate_password(new_password, field="new_password")
        new_hash = await self._hasher.hash(new_password)

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.ResetPassword(
                new_password=new_password, new_password_hash=new_hash, actor=actor
            )

        return await self._run(user_id, build, trace)

    async def issue_password_reset(self, *, user_id: str, trace: Trace) -> Outcome:
        """Records a reset request whose token the mailer derives and sends."""
        tokens = self._tokens()
        nonce = tokens.new_nonce()
        digest = token_hash(tokens.reset_secret(nonce))
        expires = self._clock() + self._lifetimes.password_reset

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.RequestPasswordReset(
                token_nonce=nonce, token_hash=digest, expires_at=expires
            )

        return await self._run(user_id, build, trace)

    async def confirm_password_reset(
        self, *, token: str, new_password: str, trace: Trace
    ) -> Outcome:
        """Sets the password with a mailed token; every failure is ``InvalidToken``."""
        parsed = parse_token(token)
        if parsed is None:
            raise domain.InvalidToken("token")
        domain.validate_password(new_password, field="new_password")
        new_hash: list[str] = []

        async def build(state: domain.UserState | None) -> domain.Command:
            matches = state is not None and MailTokens.reset_matches(
                parsed.secret, state.reset_token_hash
            )
            if matches and not new_hash:  # bcrypt only for the token's holder
                new_hash.append(await self._hasher.hash(new_password))
            return domain.CompletePasswordReset(
                token_matches=matches,
                new_password=new_password,
                new_password_hash=new_hash[0] if new_hash else "",
            )

        try:
            return await self._run(parsed.user_id, build, trace)
        except domain.UserNotFound:
            raise domain.InvalidToken("token") from None

    async def confirm_email_verification(self, *, token: str, trace: Trace) -> Outcome:
        """Marks the current email verified with a mailed token."""
        tokens = self._tokens()
        parsed = parse_token(token)
        if parsed is None:
            raise domain.InvalidToken("token")

        async def build(state: domain.UserState | None) -> domain.Command:
            matches = state is not None and tokens.verification_matches(
                parsed.secret,
                user_id=state.user_id,
                email=state.email,
                email_version=state.email_set_version,
            )
            return domain.VerifyEmail(token_matches=matches, ttl=self._lifetimes.email_verification)

        try:
            return await self._run(parsed.user_id, build, trace)
        except domain.UserNotFound:
            raise domain.InvalidToken("token") from None

    async def revoke_sessions(
        self, *, user_id: str, session_id: str, every: bool, reason: str, trace: Trace
    ) -> Outcome:
        """Ends one session of the user, or every one."""

        async def build(state: domain.UserState | None) -> domain.Command:
            if every:
                return domain.RevokeAllSessions(reason or "logout everywhere")
            return domain.RevokeSession(session_id, reason or "logout")

        return await self._run(user_id, build, trace)

    async def record_login(self, *, user_id: str, client_address: str, trace: Trace) -> Outcome:
        """Records a login; the client address is cut to the domain's maximum length."""
        address = client_address[: domain.MAX_CLIENT_ADDRESS_LENGTH]

        async def build(state: domain.UserState | None) -> domain.Command:
            return domain.RecordLogin(address)

        return await self._run(user_id, build, trace)

    # -- the loop ------------------------------------------------------------

    async def _run(
        self,
        user_id: str,
        build: BuildCommand,
        trace: Trace,
        *,
        new_stream: bool = False,
        claim_field: str = "email",
        claims: Callable[[], Claims] = lambda: (),
        claim_is_race: bool = False,
    ) -> Outcome:
        """The loop of the module docstring. ``claims`` gives extra claims of the
        append (read after ``build``); with ``claim_is_race`` a refused claim
        is a concurrent change to retry, not ALREADY_EXISTS."""
        attempt = 0
        stale_cache_forgiven = False
        while attempt < self._max_attempts:
            attempt += 1
            cached = None if new_stream else self._cache.get(user_id)
            if cached is not None:
                state, version = cached
            elif new_stream and attempt == 1:
                # A fresh uuid4 has no stream: skip the load round trip.
                state, version = None, 0
            else:
                state, version = await self._load(user_id, new_stream=new_stream)
            try:
                events = await self._decide(state, build)
            except domain.DomainError:
                if cached is None:
                    raise
                # The refusal may come from stale data (another instance
                # changed the email, password or status): decide again on the
                # store's state and report only that verdict. Not a new
                # attempt; ``build`` keeps its bcrypt verdicts by stored hash.
                log.debug("refused on cached state of %s; reloading", user_id)
                self._cache.discard(user_id, version)
                state, version = await self._load(user_id, new_stream=new_stream)
                events = await self._decide(state, build)
                cached = None  # decided on the store's state after all
            try:
                appended = await self._store.append(
                    user_id=user_id,
                    expected_version=version,
                    events=events,
                    event_ids=[self._new_id() for _ in events],
                    trace=trace,
                    extra_claims=claims(),
                )
            except ClaimConflict:
                if claim_is_race:
                    log.info("deactivation of %s raced another one; deciding again", user_id)
                    if attempt == self._max_attempts:
                        break
                    continue
                # Safe from a cached state too: the store checks the version
                # before the claims, so this refusal was made at our exact
                # (hence current) version, and it is about another user.
                # Debug only, and without the value (an email is personal data):
                # a duplicate is the caller's answer, counted by grpc_code, not
                # news for the operator (the admin bootstrap meets one on every restart).
                log.debug("claim on %s refused for %s: another user holds it", claim_field, user_id)
                raise ServiceError(
                    grpc.StatusCode.ALREADY_EXISTS, f"{claim_field}: {ALREADY_REGISTERED}"
                ) from None
            except StoreConflict:
                # What we decided against is stale: the next attempt must not
                # take it from the cache again.
                self._cache.discard(user_id, version)
                if cached is not None and not stale_cache_forgiven:
                    # Only our cache was behind (another instance wrote), not
                    # a race: reload at once, and it does not use up an attempt.
                    stale_cache_forgiven = True
                    attempt -= 1
                    continue
                if attempt == self._max_attempts:
                    break
                # Jitter spreads competing writers so they stop colliding.
                await asyncio.sleep(random.uniform(0, self._retry_pause * 2 ** (attempt - 1)))
                continue
            new_state = domain.fold(events, state)
            assert new_state is not None  # decide returns at least one event
            self._cache.put(user_id, new_state, appended.version)
            return Outcome(user_id, appended.version, appended.last_position, new_state)
        raise ServiceError(
            grpc.StatusCode.ABORTED,
            f"user {user_id} was changed concurrently; gave up after "
            f"{self._max_attempts} attempts, retry the command",
        )

    async def _load(self, user_id: str, *, new_stream: bool) -> tuple[domain.UserState | None, int]:
        """The user as the store has it now, cached; UserNotFound unless ``new_stream``."""
        state, version = await self._store.load(user_id)
        if state is None:
            if not new_stream:
                raise domain.UserNotFound(user_id)
        else:
            self._cache.put(user_id, state, version)
        return state, version

    async def _decide(
        self, state: domain.UserState | None, build: BuildCommand
    ) -> tuple[domain.DomainEvent, ...]:
        command = await build(state)
        return domain.decide(state, command, now=self._clock())


def _require_active(state: domain.UserState | None, user_id: str) -> domain.UserState:
    # Checked before bcrypt, with the errors decide would raise anyway.
    if state is None:
        raise domain.UserNotFound(user_id)
    if state.status is domain.UserStatus.ERASED:
        raise domain.UserErasedError(user_id)
    if not state.is_active:
        raise domain.UserDeactivatedError(user_id)
    return state
