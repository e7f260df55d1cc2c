"""Bearer tokens for the load generator, signed with the benchmark's own JWT secret.

The harness starts every service with ``SECRET``, so it can mint what a real
caller would present: a service identity (as command_svc and query_svc do),
an admin, or a user's own token (what Login would have issued). The
services verify every token exactly as in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from service_kit.auth import ROLE_ADMIN, ROLE_SERVICE, ROLE_USER, Principal, TokenCodec

__all__ = ["SECRET", "Metadata", "Tokens"]

#: JWT_SECRET of every service the harness starts (never a real deployment's).
SECRET: Final = "benchmark-secret-of-at-least-32-bytes!!"
# Long enough that no token expires during a run.
_TTL_SECONDS: Final = 6 * 3600

Metadata = tuple[tuple[str, str], ...]


class Tokens:
    """Mints ``authorization`` metadata for the roles the scenarios act as."""

    def __init__(self) -> None:
        self._codec = TokenCodec(SECRET, ttl_seconds=_TTL_SECONDS)

    def _metadata(self, principal: Principal) -> Metadata:
        token, _ = self._codec.issue(principal, now=datetime.now(UTC))
        return (("authorization", f"Bearer {token}"),)

    def service(self) -> Metadata:
        return self._metadata(Principal(subject="bench", email="", role=ROLE_SERVICE))

    def admin(self) -> Metadata:
        return self._metadata(
            Principal(subject="bench-admin", email="admin@bench.example.com", role=ROLE_ADMIN)
        )

    def user(self, user_id: str, email: str) -> Metadata:
        return self._metadata(Principal(subject=user_id, email=email, role=ROLE_USER))
