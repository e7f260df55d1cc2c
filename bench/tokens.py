"""Bearer tokens for the load generator, signed with the benchmark's own keys.

The harness starts every service with ``KEYS_DIR`` = :data:`KEYS_DIR` (a
folder made for this process, removed at exit), so it can mint what a real
caller would present: its own service identity (``bench``, a signer of its
own like command_svc's), an admin, or a user's own token (what Login would
have issued, signed with query_svc's key). The services verify every token
exactly as in production.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from service_kit import keys
from service_kit.auth import (
    ROLE_ADMIN,
    ROLE_SERVICE,
    ROLE_USER,
    Principal,
    TokenSettings,
)

__all__ = ["KEYS_DIR", "Metadata", "Tokens"]

_SERVICE: Final = "bench"
#: KEYS_DIR of every service the harness starts (never a real deployment's keys).
KEYS_DIR: Final = Path(tempfile.mkdtemp(prefix="cqrs-bench-keys-"))
atexit.register(shutil.rmtree, KEYS_DIR, True)
keys.init_keys(KEYS_DIR, (*keys.DEFAULT_SIGNERS, _SERVICE))
# Long enough that no token expires during a run.
_TTL_SECONDS: Final = 6 * 3600

Metadata = tuple[tuple[str, str], ...]


class Tokens:
    """Mints ``authorization`` metadata for the roles the scenarios act as."""

    def __init__(self) -> None:
        settings = TokenSettings(keys_dir=KEYS_DIR, ttl_seconds=_TTL_SECONDS)
        self._users = settings.signer(keys.USER_TOKEN_ISSUER)
        self._bench = settings.signer(_SERVICE)

    def _metadata(self, principal: Principal) -> Metadata:
        signer = self._bench if principal.role == ROLE_SERVICE else self._users
        token, _ = signer.issue(principal, now=datetime.now(UTC))
        return (("authorization", f"Bearer {token}"),)

    def service(self) -> Metadata:
        return self._metadata(Principal(subject=_SERVICE, email="", role=ROLE_SERVICE))

    def admin(self) -> Metadata:
        return self._metadata(
            Principal(subject="bench-admin", email="admin@bench.example.com", role=ROLE_ADMIN)
        )

    def user(self, user_id: str, email: str) -> Metadata:
        return self._metadata(Principal(subject=user_id, email=email, role=ROLE_USER))
