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
from typing import TypeAlias

from domain.validation import ROLE_USER

__all__ = [
    "ChangeEmail",
    "ChangePassword",
    "Command",
    "Deactivate",
    "RecordLogin",
    "RegisterUser",
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


@dataclass(frozen=True, slots=True)
class ChangeEmail:
    """Change the email address to ``new_email`` (normalised by ``decide``)."""

    new_email: str


@dataclass(frozen=True, slots=True)
class Deactivate:
    """Deactivate the user (terminal); ``reason`` is free text, may be empty."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class RecordLogin:
    """Record a successful login; ``client_address`` may be empty."""

    client_address: str = ""


Command: TypeAlias = RegisterUser | ChangePassword | ChangeEmail | Deactivate | RecordLogin
