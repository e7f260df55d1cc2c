"""Where the data keys live and which master key wraps them.

``KEYS_FILE`` is the one name of the key store's file: ``$DATA_DIR/pii-keys.sqlite3``
unless ``PII_KEYS_FILE`` names another path. The master key is
``PII_MASTER_KEY`` (32 bytes, base64); without it, a key is generated once
into ``$DATA_DIR/pii-master.key`` (mode 0600) and read from there, which suits
the embedded stack. Production must set ``PII_MASTER_KEY`` (kept in a secret
store, never beside the data): a key file next to the keys it wraps protects
nothing once the data folder leaks.

Invariant: every service of one deployment resolves the same file and the
same master key (store_svc writes keys, query_svc reads them to project the
Kafka stream); a wrong master key is refused at start (see ``pii.keystore``).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pii.keystore import KeyStore
from service_kit.settings import SettingsError, env_str

__all__ = [
    "KEYS_FILE",
    "MASTER_KEY_FILE",
    "PiiSettings",
    "decode_master_key",
    "new_master_key",
]

KEYS_FILE: Final = "pii-keys.sqlite3"
"""The key store's file name in the data folder (``PII_KEYS_FILE`` overrides the path)."""
MASTER_KEY_FILE: Final = "pii-master.key"
"""Where the embedded stack keeps its generated master key when ``PII_MASTER_KEY`` is unset."""
MASTER_KEY_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class PiiSettings:
    """The key store's path and master key (``None``: the data folder's key file)."""

    keys_file: Path
    master_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PiiSettings:
        """Reads ``PII_KEYS_FILE``, ``PII_MASTER_KEY`` and ``DATA_DIR`` (no file is touched)."""
        data_dir = Path(env_str(env, "DATA_DIR", "data"))
        keys_file = Path(env_str(env, "PII_KEYS_FILE", str(data_dir / KEYS_FILE)))
        given = env.get("PII_MASTER_KEY", "")
        return cls(keys_file, decode_master_key(given, "PII_MASTER_KEY") if given else None)

    def resolved_master_key(self) -> bytes:
        """The master key: the configured one, else the data folder's key file
        (generated on first use)."""
        if self.master_key is not None:
            return self.master_key
        return _file_master_key(self.keys_file.parent / MASTER_KEY_FILE)

    def open_keys(self) -> KeyStore:
        """Opens the key store (WrongMasterKey if the master key does not open it)."""
        return KeyStore(self.keys_file, self.resolved_master_key())


def decode_master_key(text: str, name: str) -> bytes:
    """The 32 bytes a base64 master key holds; SettingsError naming ``name`` if not."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise SettingsError(f"{name}: must be {MASTER_KEY_BYTES} bytes, base64 (got {len(key)})")
    return key


def new_master_key() -> str:
    """A fresh master key, base64 (what ``PII_MASTER_KEY`` takes)."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


def _file_master_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two services starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(new_master_key() + "\n")
    return decode_master_key(path.read_text(), str(path))
