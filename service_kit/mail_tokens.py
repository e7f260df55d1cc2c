"""One-time mail tokens (password reset, email verification) that are stored nowhere.

A token is ``base64url(user id as 16 bytes || 32-byte secret)``: the user id
tells the command side which stream to load, the secret proves the holder
got the mail. The secret is an HMAC-SHA256, under the mail key
(``KEYS_DIR/mail.key``, held by command_svc and query_svc only), of a
purpose and of facts recorded in the event that asked for the mail:

- password reset: the ``token_nonce`` of ``user.password_reset.requested``;
  the event also stores ``token_hash`` (SHA-256 of the secret), against which
  the command side checks a presented token;
- email verification: the user id, the address and the stream version of
  the event that set it (``user.created`` / ``user.email.changed``); the
  command side recomputes it from the current state, so a token dies with
  its address.

So the event stream is the outbox: the mailer re-derives each token from
its event, and neither the store nor the outbox ever holds a token in
clear. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from service_kit.settings import env_int

__all__ = [
    "MailTokens",
    "ParsedToken",
    "TokenLifetimes",
    "parse_token",
    "token_hash",
]

_RESET: Final = b"password-reset\x00"
_VERIFY: Final = b"verify-email\x00"
_SECRET_BYTES: Final = 32
_TOKEN_BYTES: Final = 16 + _SECRET_BYTES


@dataclass(frozen=True, slots=True)
class TokenLifetimes:
    """How long mailed one-time tokens stay valid.

    ``PASSWORD_RESET_TTL_SECONDS`` (default 1800) and
    ``EMAIL_VERIFICATION_TTL_SECONDS`` (default 172800, two days).
    """

    password_reset: timedelta = timedelta(minutes=30)
    email_verification: timedelta = timedelta(days=2)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenLifetimes:
        reset = env_int(env, "PASSWORD_RESET_TTL_SECONDS", 1800, minimum=1, maximum=86_400)
        verify = env_int(
            env, "EMAIL_VERIFICATION_TTL_SECONDS", 172_800, minimum=1, maximum=30 * 86_400
        )
        return cls(
            password_reset=timedelta(seconds=reset), email_verification=timedelta(seconds=verify)
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """The two halves of a token."""

    user_id: str
    secret: bytes = field(repr=False)


def parse_token(token: str) -> ParsedToken | None:
    """The user id and secret of a well-formed token; None for anything else."""
    text = token.strip()
    if not text or len(text) > 128:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _TOKEN_BYTES:
        return None
    return ParsedToken(str(uuid.UUID(bytes=raw[:16])), raw[16:])


def token_hash(secret: bytes) -> str:
    """What an event stores of a token: SHA-256 of its secret, base64url."""
    return _b64(hashlib.sha256(secret).digest())


class MailTokens:
    """Derives and checks tokens with the mail key (see the module docstring)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the mail key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:  # never show the key
        return "MailTokens()"

    def _mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._key, b"".join(parts), hashlib.sha256).digest()

    @staticmethod
    def _token(user_id: str, secret: bytes) -> str:
        return _b64(uuid.UUID(user_id).bytes + secret)

    # -- password reset -------------------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        """A fresh random nonce for a reset request."""
        return _b64(secrets.token_bytes(16))

    def reset_secret(self, nonce: str) -> bytes:
        return self._mac(_RESET, nonce.encode("ascii"))

    def reset_token(self, user_id: str, nonce: str) -> str:
        """The token mailed for the reset request with this nonce."""
        return self._token(user_id, self.reset_secret(nonce))

    @staticmethod
    def reset_matches(secret: bytes, stored_hash: str) -> bool:
        """Whether a presented secret is the one whose hash the request stored."""
        return bool(stored_hash) and hmac.compare_digest(token_hash(secret), stored_hash)

    # -- email verification ---------------------------------------------------------

    def _verify_secret(self, user_id: str, email: str, email_version: int) -> bytes:
        return self._mac(
            _VERIFY, user_id.encode(), b"\x00", email.encode(), b"\x00", str(email_version).encode()
        )

    def verification_token(self, user_id: str, email: str, email_version: int) -> str:
        """The token mailed to ``email``, set at stream version ``email_version``."""
        return self._token(user_id, self._verify_secret(user_id, email, email_version))

    def verification_matches(
        self, secret: bytes, *, user_id: str, email: str, email_version: int
    ) -> bool:
        """Whether a presented secret is the one derived for this address."""
        return hmac.compare_digest(secret, self._verify_secret(user_id, email, email_version))
