"""Idempotency keys: a retried command returns the first call's result.

A client may send metadata ``idempotency-key`` (1..128 characters). Within
one command_svc process, a second call with the same key, the same method
and the same caller (principal subject, or anonymous) gets the first call's
response instead of running again; while the first is still running the
second waits for it. Reusing a key for a different request (other fields)
is INVALID_ARGUMENT naming ``idempotency-key``.

Scope and limits, on purpose:
- per process, in memory: a bounded LRU (default 10,000 keys) whose entries
  live 24 h; a restart or eviction forgets keys. That is acceptable because
  the store's event-id idempotency already makes the retried *append*
  safe; this cache only spares the client a confusing second outcome (e.g.
  "email: already registered" for its own registration).
- only successes are remembered; a failed call may be retried with the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from service_kit.errors import invalid

__all__ = ["IDEMPOTENCY_KEY", "MAX_KEY_LENGTH", "IdempotencyCache", "fingerprint"]

IDEMPOTENCY_KEY: Final = "idempotency-key"
MAX_KEY_LENGTH: Final = 128

T = TypeVar("T")
CacheKey = tuple[str, str, str]  # (method, principal subject or "", client key)


def fingerprint(serialized_request: bytes) -> bytes:
    """A digest identifying a request's content (never stored in clear)."""
    return hashlib.sha256(serialized_request).digest()


def check_key(key: str) -> str:
    """The key if acceptable; INVALID_ARGUMENT naming ``idempotency-key`` otherwise."""
    if len(key) > MAX_KEY_LENGTH:
        raise invalid(IDEMPOTENCY_KEY, f"must be at most {MAX_KEY_LENGTH} characters")
    return key


@dataclass(slots=True)
class _Done(Generic[T]):
    digest: bytes
    result: T
    expires_at: float


@dataclass(slots=True)
class _Running(Generic[T]):
    digest: bytes
    future: asyncio.Future[T]


class IdempotencyCache(Generic[T]):
    """Results of finished calls by key, and calls in flight (see module docstring)."""

    def __init__(
        self,
        *,
        capacity: int = 10_000,
        ttl_seconds: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._ttl = ttl_seconds
        self._clock = clock
        self._done: OrderedDict[CacheKey, _Done[T]] = OrderedDict()
        self._running: dict[CacheKey, _Running[T]] = {}

    def __len__(self) -> int:
        return len(self._done)

    async def run(self, key: CacheKey, digest: bytes, compute: Callable[[], Awaitable[T]]) -> T:
        """The cached result for ``key``, or ``compute()``'s, remembered if it succeeds."""
        if self._capacity == 0:
            return await compute()
        now = self._clock()
        done = self._done.get(key)
        if done is not None and done.expires_at <= now:
            del self._done[key]
            done = None
        if done is not None:
            self._require_same(done.digest, digest)
            self._done.move_to_end(key)
            return done.result
        running = self._running.get(key)
        if running is not None:
            self._require_same(running.digest, digest)
            try:
                # shield: a waiter that is cancelled must not cancel the first call.
                return await asyncio.shield(running.future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if running.future.cancelled() and not (task and task.cancelling()):
                    # The first call was cancelled, not us: run it ourselves.
                    return await self.run(key, digest, compute)
                raise
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = _Running(digest, future)
        try:
            result = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            # Mark retrieved so a future nobody waited on does not log.
            future.exception()
            raise
        finally:
            del self._running[key]
        future.set_result(result)
        self._done[key] = _Done(digest, result, self._clock() + self._ttl)
        while len(self._done) > self._capacity:
            self._done.popitem(last=False)
        return result

    @staticmethod
    def _require_same(stored: bytes, digest: bytes) -> None:
        if stored != digest:
            raise invalid(IDEMPOTENCY_KEY, "was already used for a different request")
