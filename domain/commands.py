"""Commands: requests to change one user, decided by :func:`domain.decide.decide`.

Commands are plain data; constructing one validates nothing (``decide`` does).
Secrets (passwords, hashes) are hidden from ``repr`` so that logging a command
never leaks them. Commands with several string fields are keyword-only, so a
password can never be passed where its hash is expected.

Only ``RegisterUser`` carries the user id: for every other command the service
loads the stream by id and passes its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeAlias

from domain.validation import ROLE_USER

__all__ = [
    "ChangeEmail",
    "ChangePassword",
    "Command",
    "CompletePasswordReset",
    "Deactivate",
    "EraseUser",
    "Reactivate",
    "RecordLogin",
    "RegisterUser",
    "RequestPasswordReset",
    "ResetPassword",
    "RevokeAllSessions",
    "RevokeSession",
    "VerifyEmail",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterUser:
    """Create a user. ``password`` is validated; ``password_hash`` is stored.

    The service hashes ``password`` (pre-hash + bcrypt) before deciding; the
    plain password travels here only so the policy is checked in one place.
    """

    user_id: str
    email: str
    password: str = field(repr=False)
    password_hash: str = field(repr=False)
    role: str = ROLE_USER


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePassword:
    """Replace the password.

    ``old_password_matches`` is the service's bcrypt verdict on
    ``old_password`` against the stored hash (the domain does no hashing).
    """

    old_password: str = field(repr=False)
    new_password: str = field(repr=False)
    old_password_matches: bool
    new_password_hash: str = field(repr=False)
    keep_session_id: str = ""
    """The caller's own session, which stays signed in ("" if the caller is not the user)."""


@dataclass(frozen=True, slots=True)
class ChangeEmail:
    """Change the email address to ``new_email`` (normalised by ``decide``)."""

    new_email: str


@dataclass(frozen=True, slots=True)
class Deactivate:
    """Deactivate the user; ``reason`` is free text, may be empty.

    ``last_active_admin`` is the service's verdict that the user is the only
    active admin (it needs every admin's state, which the domain does not
    see); such a deactivation is refused.
    """

    reason: str = ""
    last_active_admin: bool = False


@dataclass(frozen=True, slots=True)
class EraseUser:
    """Erase the user's personal data; ``actor`` is who asks (their id or an admin's).

    ``last_active_admin`` is the service's verdict, as for :class:`Deactivate`.
    """

    actor: str
    last_active_admin: bool = False


@dataclass(frozen=True, slots=True)
class Reactivate:
    """Make a deactivated user active again (an admin's decision)."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetPassword:
    """An admin sets the password without the old one; ``actor`` is the admin's id."""

    new_password: str = field(repr=False)
    new_password_hash: str = field(repr=False)
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestPasswordReset:
    """Issue a one-time reset token, valid until ``expires_at``.

    ``token_nonce`` and ``token_hash`` come from the service
    (``service_kit.mail_tokens``): the domain never sees the token itself.
    """

    token_nonce: str = field(repr=False)
    token_hash: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletePasswordReset:
    """Set the password with a mailed reset token.

    ``token_matches`` is the service's constant-time verdict on the
    presented token against the pending ``reset_token_hash``.
    """

    token_matches: bool
    new_password: str = field(repr=False)
    new_password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RevokeSession:
    """End one session (``reason``: ``logout``, ``refresh token reused``, ...)."""

    session_id: str
    reason: str = "logout"


@dataclass(frozen=True, slots=True)
class RevokeAllSessions:
    """End every session of the user at once."""

    reason: str = "logout everywhere"


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyEmail:
    """Confirm the current email with a mailed token valid for ``ttl`` after the email was set.

    ``token_matches`` is the service's constant-time verdict on the token
    derived for the current email.
    """

    token_matches: bool
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class RecordLogin:
    """Record a successful login; ``client_address`` may be empty."""

    client_address: str = ""


Command: TypeAlias = (
    RegisterUser
    | ChangePassword
    | ChangeEmail
    | Deactivate
    | RecordLogin
    | Reactivate
    | ResetPassword
    | RequestPasswordReset
    | CompletePasswordReset
    | RevokeSession
    | RevokeAllSessions
    | VerifyEmail
    | EraseUser
)
