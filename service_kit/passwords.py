"""Password hashing: SHA-256 pre-hash, then bcrypt, off the event loop.

Invariants:
- bcrypt reads only the first 72 bytes of its input, so the password's UTF-8
  bytes are first hashed with SHA-256 and base64-encoded (44 ASCII bytes, no
  NUL): every character of a long password counts.
- bcrypt runs in a small dedicated thread pool (bcrypt releases the GIL), so
  a burst of registrations or logins never stalls the event loop; at most
  ``max_workers`` hashes run at once, the rest queue.
- ``verify`` never raises for a malformed stored hash; it returns False.
- ``dummy_verify`` costs what a real ``verify`` costs, so a login for an
  unknown account takes as long as one with a wrong password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

import bcrypt

from service_kit.settings import env_int

__all__ = ["DEFAULT_COST", "MAX_COST", "MIN_COST", "PasswordHasher"]

MIN_COST: Final = 4
MAX_COST: Final = 16
DEFAULT_COST: Final = 12

T = TypeVar("T")


def _prehash(plain: str) -> bytes:
    return base64.b64encode(hashlib.sha256(plain.encode("utf-8")).digest())


def _hash_sync(plain: str, cost: int) -> str:
    return bcrypt.hashpw(_prehash(plain), bcrypt.gensalt(rounds=cost)).decode("ascii")


def _verify_sync(plain: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(plain), hashed.encode("ascii"))
    except ValueError:
        # Malformed or non-ASCII hash (UnicodeEncodeError is a ValueError).
        return False


class PasswordHasher:
    """Hashes and verifies passwords at a fixed bcrypt cost (4..16)."""

    def __init__(self, cost: int = DEFAULT_COST, *, max_workers: int = 2) -> None:
        if not MIN_COST <= cost <= MAX_COST:
            raise ValueError(f"bcrypt cost must be between {MIN_COST} and {MAX_COST}, got {cost}")
        self.cost = cost
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bcrypt")
        self._dummy_hash: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PasswordHasher:
        """Cost from ``BCRYPT_COST`` (4..16, default 12)."""
        return cls(env_int(env, "BCRYPT_COST", DEFAULT_COST, minimum=MIN_COST, maximum=MAX_COST))

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def hash(self, plain: str) -> str:
        """A new bcrypt hash (random salt) of the pre-hashed password."""
        return await self._run(lambda: _hash_sync(plain, self.cost))

    async def verify(self, plain: str, hashed: str) -> bool:
        """True if ``plain`` matches ``hashed``; False if not or if ``hashed`` is malformed."""
        return await self._run(lambda: _verify_sync(plain, hashed))

    async def dummy_verify(self) -> None:
        """Spends the time of one ``verify`` at this cost, with no result."""
        if self._dummy_hash is None:
            # Computed once per hasher; the first call pays for it too, which
            # only makes that one call slower, never faster than a real verify.
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        await self.verify(secrets.token_urlsafe(16), self._dummy_hash)

    def close(self) -> None:
        """Releases the worker threads (queued work still finishes)."""
        self._executor.shutdown(wait=False)
