"""The users command_svc loaded or wrote, kept in memory to skip LoadAggregate.

A bounded LRU of ``user id -> (state, version)``, like Axon's or Marten's
aggregate caches. The handlers read it instead of calling the store, fill it
after a successful load or append, and drop an entry the store proved stale.

Invariants:
- an entry is a state folded from the first ``version`` events of the
  user's stream (``state.version == version``); "no such user" is never
  cached, so a miss always goes to the store. After an append the entry is
  folded from the events as command_svc decided them, so its times
  (``updated_at``, ``last_login_at``) are command_svc's clock, a few
  milliseconds off the store's timestamps; no decision reads them;
- an entry may be stale (another command_svc instance, or a slower command
  in this one, appended since), and correctness never depends on it being
  fresh: the handlers append at the exact cached version, so a stale entry
  costs an ABORTED and a reload, and they re-decide a refusal made on a
  cached state against a fresh load before reporting it;
- an entry never goes back in time: ``put`` keeps the higher version, so a
  command that loaded before another one appended cannot overwrite the newer
  entry with its older state;
- at most ``capacity`` entries, the least recently used evicted first;
  ``capacity == 0`` disables the cache (every ``get`` misses).

Not locked: command_svc runs on one event loop and no method awaits, so each
call is atomic with respect to the commands interleaving around it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import domain

__all__ = ["AggregateCache", "Cached"]


class Cached(NamedTuple):
    """A user's state and the stream version it was folded up to."""

    state: domain.UserState
    version: int


class AggregateCache:
    """Bounded LRU of user states by id (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self._capacity = capacity
        self._entries: OrderedDict[str, Cached] = OrderedDict()

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, user_id: str) -> Cached | None:
        """The cached entry (now the most recently used), or None."""
        entry = self._entries.get(user_id)
        if entry is not None:
            self._entries.move_to_end(user_id)
        return entry

    def put(self, user_id: str, state: domain.UserState, version: int) -> None:
        """Remembers ``state`` at ``version`` unless a newer version is already cached."""
        if self._capacity == 0:
            return
        if state.version != version:
            # Not a state of this stream at that version: appending at
            # ``version`` on its basis could skip events. Forget the user.
            self._entries.pop(user_id, None)
            return
        current = self._entries.get(user_id)
        if current is not None and current.version > version:
            # A slower command finished after a newer one: keep the newer.
            self._entries.move_to_end(user_id)
            return
        self._entries[user_id] = Cached(state, version)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def discard(self, user_id: str, version: int) -> None:
        """Forgets the user if its entry is at ``version`` or older (proved stale).

        A newer entry stays: it was written after the one proved stale, by a
        command of this instance that succeeded (or loaded) meanwhile.
        """
        current = self._entries.get(user_id)
        if current is not None and current.version <= version:
            del self._entries[user_id]
