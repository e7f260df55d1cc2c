"""Which user tokens are revoked: an in-memory view fed from the event stream.

Tokens are short-lived and checked by every service without a network hop;
what can end them early is an event in the store:

- an event that ends *every* session of a user (password changed or reset,
  deactivated, "log out everywhere", erased) at stream version ``v``: every
  token of that user issued under a credential version below ``v`` is
  revoked (a token carries the ``cv`` it was issued under:
  ``domain.UserState.credential_version`` as the issuer saw it), except
  those of the session that changed the password, which stays signed in
  (the rule is ``domain.CredentialEpoch``, shared with query_svc's refresh);
- an event that ends *one* session (logout, a reused refresh token): every
  token carrying that session id (``sid``) is revoked.

Each service keeps a :class:`RevocationView` of the events of the last
``horizon`` seconds (the longest token lifetime plus a margin for clock
skew): an older event can only revoke tokens that have expired anyway, so
it is forgotten. Memory is therefore bounded by the revocations of one
token lifetime, not by the number of users. Checking a token is two dict
lookups (:meth:`RevocationView.revoked`).

The view is filled at start from the events of the last ``horizon``
seconds and kept live by a subscription (``service_kit.revocation_feed``,
or store_svc's own engine). Until that first catch-up is done it is not
``ready``, and user tokens are refused as UNAVAILABLE (fail closed): a
service that just started must not honour a token revoked a minute ago.

Service tokens (role ``service``) carry no session and are not revoked here.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from domain.sessions import CredentialEpoch, SessionsEnded

__all__ = [
    "CLOCK_SKEW_MARGIN",
    "NOT_READY",
    "REVOKED_PREFIX",
    "Ended",
    "RevocationCheck",
    "RevocationView",
    "TokenSubject",
    "revocation_horizon",
]

NOT_READY: Final = "revoked sessions are not loaded yet (the event store is not reachable); retry"

REVOKED_PREFIX: Final = "token revoked: "

CLOCK_SKEW_MARGIN: Final = 120.0
"""Seconds a revocation is kept beyond the token lifetime, for clocks that disagree."""


def revocation_horizon(ttl_seconds: int) -> float:
    """How long a revocation must be remembered: the longest token lifetime and a margin."""
    return ttl_seconds + CLOCK_SKEW_MARGIN


@dataclass(frozen=True, slots=True)
class Ended:
    """Sessions one event ended: all of a user's (``session_id == ""``), or one.

    ``version`` is the event's stream version (tokens with ``cv`` below it
    are revoked when all sessions ended, but those of ``kept_session_id``);
    ``occurred_at`` its time (Unix s).
    """

    user_id: str
    version: int
    session_id: str
    occurred_at: float
    reason: str
    kept_session_id: str = ""

    def sessions_ended(self) -> SessionsEnded:
        """The domain's view of what this event ended."""
        return SessionsEnded(
            self.user_id, self.version, self.session_id, self.reason, self.kept_session_id
        )


class TokenSubject(Protocol):
    """What a revocation check reads of a caller (``service_kit.auth.Principal``)."""

    @property
    def subject(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def credential_version(self) -> int: ...


class RevocationCheck(Protocol):
    """What the auth interceptor needs of a revocation view."""

    def revoked(self, principal: TokenSubject) -> str:
        """Why the caller's token is revoked ("" if it is not)."""
        ...

    async def wait_revoked(self, principal: TokenSubject, expires_at: float | None) -> str:
        """Returns why, once the token is revoked or has expired (for open streams)."""
        ...


class RevocationView:
    """Recent revocations by user and by session (see the module docstring).

    Invariants: an entry is kept until ``horizon`` seconds after its event
    (so for at least the lifetime of any token it revokes); for a user, the
    highest version of a session-ending event within the horizon is kept;
    ``position`` only grows.
    """

    def __init__(self, *, horizon: float, clock: Callable[[], float] = time.time) -> None:
        if horizon <= 0:
            raise ValueError("horizon must be positive")
        self.horizon = horizon
        self._clock = clock
        self._users: dict[str, tuple[CredentialEpoch, float, str]] = {}  # id -> (epoch, until, why)
        self._sessions: dict[str, tuple[float, str]] = {}  # sid -> (until, why)
        self._expiry: list[tuple[float, str, str]] = []  # heap of (until, kind, key)
        self.position = 0
        self.ready = False
        self._ready_at_position: int | None = None
        self._changed: asyncio.Event | None = None

    # -- feeding ----------------------------------------------------------------

    def start_from(self, position: int, *, ready_at: int) -> None:
        """The feed starts after ``position``; the view is complete at ``ready_at``."""
        self.position = max(self.position, position)
        self._ready_at_position = ready_at
        self._check_ready()

    def apply(self, ended: Ended, position: int) -> None:
        """Records the sessions an event at ``position`` ended."""
        until = ended.occurred_at + self.horizon
        if until > self._clock():
            if ended.session_id:
                self._sessions[ended.session_id] = (until, ended.reason)
                heapq.heappush(self._expiry, (until, "s", ended.session_id))
            else:
                known = self._users.get(ended.user_id)
                if known is None or ended.version >= known[0].version:
                    # An epoch older than the horizon constrains no live token:
                    # starting from none is exact.
                    before = known[0] if known is not None else CredentialEpoch()
                    epoch = before.after(ended.sessions_ended())
                    self._users[ended.user_id] = (epoch, until, ended.reason)
                    heapq.heappush(self._expiry, (until, "u", ended.user_id))
        self.advance(position)
        self._wake()

    def advance(self, position: int) -> None:
        """Every event up to ``position`` has been seen (a checkpoint)."""
        self.position = max(self.position, position)
        self._check_ready()
        self._purge()

    def mark_ready(self) -> None:
        if not self.ready:
            self.ready = True
            self._wake()

    def _check_ready(self) -> None:
        if (
            not self.ready
            and self._ready_at_position is not None
            and self.position >= self._ready_at_position
        ):
            self.mark_ready()

    def _purge(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, kind, key = heapq.heappop(self._expiry)
            if kind == "s":
                entry = self._sessions.get(key)
                if entry is not None and entry[0] <= now:
                    del self._sessions[key]
            else:
                user = self._users.get(key)
                if user is not None and user[1] <= now:
                    del self._users[key]

    def __len__(self) -> int:
        return len(self._users) + len(self._sessions)

    # -- checking ---------------------------------------------------------------

    def revoked(self, principal: TokenSubject) -> str:
        if not self.ready:
            return NOT_READY
        user = self._users.get(principal.subject)
        if user is not None and not user[0].allows(
            principal.session_id, principal.credential_version
        ):
            return REVOKED_PREFIX + user[2]
        if principal.session_id:
            session = self._sessions.get(principal.session_id)
            if session is not None:
                return REVOKED_PREFIX + session[1]
        return ""

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def wait_ready(self, within: float) -> bool:
        """Waits at most ``within`` seconds for the first catch-up; whether it is done."""
        try:
            async with asyncio.timeout(within):
                while not self.ready:
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    await self._changed.wait()
        except TimeoutError:
            pass
        return self.ready

    async def wait_revoked(self, principal: TokenSubject, expires_at: float | None) -> str:
        while True:
            reason = self.revoked(principal)
            if reason and reason != NOT_READY:
                return reason
            timeout = None if expires_at is None else expires_at - self._clock()
            if timeout is not None and timeout <= 0:
                return "token expired"
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                continue
