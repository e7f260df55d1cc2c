"""Every response body the end-to-end session received, for the no-hash check.

Invariant: whatever a client of this system can read (HTTP bodies, grpcurl
output, newman's recorded responses) is added here before a test looks at
it, so the check at the end of the session covers the whole session, not
only what individual tests thought of asserting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# The prefixes of every bcrypt variant (modular crypt format).
BCRYPT_PREFIXES: tuple[str, ...] = ("$2b$", "$2a$", "$2y$")


@dataclass(frozen=True, slots=True)
class Leak:
    """A recorded body that contains a bcrypt prefix."""

    source: str
    excerpt: str


def find_hash(text: str) -> int:
    """The index of the first bcrypt prefix in ``text``, or -1."""
    found = [i for i in (text.find(p) for p in BCRYPT_PREFIXES) if i >= 0]
    return min(found) if found else -1


@dataclass(slots=True)
class BodyLog:
    """Bodies keyed by where they came from (e.g. ``GET /users -> 200``)."""

    _entries: list[tuple[str, str]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, source: str, body: bytes | str) -> None:
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        with self._lock:
            self._entries.append((source, text))

    def __len__(self) -> int:
        return len(self._entries)

    def leaks(self) -> list[Leak]:
        """Every recorded body that contains a bcrypt prefix, with some context."""
        out: list[Leak] = []
        with self._lock:
            entries = list(self._entries)
        for source, text in entries:
            at = find_hash(text)
            if at >= 0:
                out.append(Leak(source, text[max(0, at - 80) : at + 80]))
        return out
