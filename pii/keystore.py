"""Per-subject data keys, wrapped by a master key, in a SQLite file apart from the events.

Crypto-shredding: every personal value of a subject (a user) is encrypted
with that subject's data key; erasing the subject deletes the key, after
which no copy of the ciphertext anywhere (events, snapshots, Kafka, backups)
can be read again.

Invariants:
- A data key is 32 random bytes (AES-256-GCM), stored only wrapped by the
  master key (AES-GCM, the subject as associated data, so a wrapped key
  cannot be moved to another subject).
- An erased subject keeps a tombstone and never gets a key again: a late
  event for it is stored with its personal fields already erased.
- Erasure deletes the key row with ``secure_delete`` on and checkpoints the
  WAL, so the wrapped key's bytes are overwritten in the file, not merely
  unlinked from the b-tree.
- Unique claims (emails) are stored as keyed hashes (:meth:`KeyStore.claim_digest`,
  a key derived from the master key), so equal addresses collide while
  the store never holds one.
- The file remembers a check value sealed with the master key it was
  created with; opening it with another master key raises
  :class:`WrongMasterKey` (services refuse to start rather than write
  events no one can read).

Several processes (or services of one process) may open the same file; the
cache of unwrapped keys is per instance, so an instance that did not perform
an erasure must :meth:`KeyStore.forget` the subject when it learns of it
(query_svc does so on ``user.erased``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeyStore", "WrongMasterKey"]

_NONCE: Final = 12
_CHECK_PLAIN: Final = b"cqrs pii key store"
_CHECK_AAD: Final = b"check"


class WrongMasterKey(RuntimeError):
    """The master key does not open this key store."""


def _schema(db: sqlite3.Connection) -> None:
    """The key store's DDL (its only tables)."""
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS pii_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS pii_keys (subject TEXT PRIMARY KEY, wrapped BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS pii_erased (subject TEXT PRIMARY KEY, erased_at TEXT NOT NULL);
        """
    )


class KeyStore:
    """Data keys by subject (see the module docstring)."""

    def __init__(self, path: Path, master_key: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._master = AESGCM(master_key)
        self._claim_key = hmac.new(master_key, b"cqrs claims v1", hashlib.sha256).digest()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA synchronous=FULL")
        _schema(self._db)
        self._check()
        self._keys: dict[str, AESGCM] = {}
        self._erased: set[str] = set()

    def _check(self) -> None:
        row = self._db.execute("SELECT value FROM pii_meta WHERE name = 'check'").fetchone()
        if row is None:
            nonce = secrets.token_bytes(_NONCE)
            sealed = nonce + self._master.encrypt(nonce, _CHECK_PLAIN, _CHECK_AAD)
            self._db.execute(
                "INSERT OR IGNORE INTO pii_meta (name, value) VALUES ('check', ?)", (sealed,)
            )
            row = self._db.execute("SELECT value FROM pii_meta WHERE name = 'check'").fetchone()
        value = bytes(row[0])
        try:
            self._master.decrypt(value[:_NONCE], value[_NONCE:], _CHECK_AAD)
        except InvalidTag:
            raise WrongMasterKey(
                f"PII_MASTER_KEY does not open the key store {self._path}: it was created with "
                "another master key; set the one it was created with"
            ) from None

    @property
    def path(self) -> Path:
        """The key store's file."""
        return self._path

    def claim_digest(self, namespace: str, value: str) -> str:
        """The keyed hash a unique claim is stored as (HMAC-SHA256, hex): the
        store enforces uniqueness without ever holding the address."""
        message = namespace.encode() + b"\0" + value.encode()
        return hmac.new(self._claim_key, message, hashlib.sha256).hexdigest()

    def close(self) -> None:
        """Closes the file."""
        with self._lock:
            self._db.close()

    def cipher(self, subject: str, *, create: bool) -> AESGCM | None:
        """The subject's data key as a cipher; None if erased (or absent and not ``create``)."""
        found = self._keys.get(subject)
        if found is not None:
            return found
        if subject in self._erased:
            return None
        with self._lock:
            if self._db.execute(
                "SELECT 1 FROM pii_erased WHERE subject = ?", (subject,)
            ).fetchone():
                self._erased.add(subject)
                return None
            row = self._db.execute(
                "SELECT wrapped FROM pii_keys WHERE subject = ?", (subject,)
            ).fetchone()
            if row is None:
                if not create:
                    return None
                key = AESGCM.generate_key(bit_length=256)
                nonce = secrets.token_bytes(_NONCE)
                wrapped = nonce + self._master.encrypt(nonce, key, subject.encode())
                self._db.execute(
                    "INSERT OR IGNORE INTO pii_keys (subject, wrapped) VALUES (?, ?)",
                    (subject, wrapped),
                )
                # Another process may have won the insert: use whatever is stored.
                row = self._db.execute(
                    "SELECT wrapped FROM pii_keys WHERE subject = ?", (subject,)
                ).fetchone()
            stored = bytes(row[0])
        cipher = AESGCM(self._master.decrypt(stored[:_NONCE], stored[_NONCE:], subject.encode()))
        self._keys[subject] = cipher
        return cipher

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Keys created inside commit together at the end (one sync instead of one per
        key): for a tool keying a whole store (``cqrs-admin copy-store``), which must
        write nothing sealed with them before the block ends. No :meth:`erase` inside."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with self._lock:
                self._db.execute("ROLLBACK")
            self._keys.clear()  # keys of the rolled back inserts are gone
            raise
        with self._lock:
            self._db.execute("COMMIT")

    def erase(self, subject: str, *, at: str) -> None:
        """Destroys the subject's data key for good (idempotent); ``at``: RFC 3339 time."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM pii_keys WHERE subject = ?", (subject,))
                self._db.execute(
                    "INSERT OR IGNORE INTO pii_erased (subject, erased_at) VALUES (?, ?)",
                    (subject, at),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            # The deleted row's page now sits in the WAL; copy it back and
            # truncate the WAL so no old page keeps the wrapped key.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.forget(subject)
        self._erased.add(subject)

    def forget(self, subject: str) -> None:
        """Drops the cached key of ``subject`` (another instance erased it)."""
        self._keys.pop(subject, None)

    def is_erased(self, subject: str) -> bool:
        """Whether the subject was erased."""
        return self.cipher(subject, create=False) is None and subject in self._erased
