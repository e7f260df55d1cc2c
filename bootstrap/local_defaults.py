"""Defaults ``make up`` fills in when the user did not: data folder, keys, admin.

Invariant: generated key material is kept in the data folder (``data/keys``:
private keys mode 0600) and reused on the next start, so tokens and data
survive a restart; keys that exist are never replaced (rotate them with
``python -m service_kit.keys rotate --dir data/keys``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from service_kit.keys import init_keys

DEFAULT_ADMIN_EMAIL = "admin@example.com"
DEFAULT_ADMIN_PASSWORD = "admin-password-change-me"


def local_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with local defaults added where a variable is unset."""
    out = dict(env)
    data = Path(out.setdefault("DATA_DIR", "data"))
    data.mkdir(parents=True, exist_ok=True)
    keys = Path(out.setdefault("KEYS_DIR", str(data / "keys")))
    init_keys(keys)  # whatever is missing; existing keys are kept
    out.setdefault("MAIL_DIR", str(data / "mail"))
    if not out.get("ADMIN_EMAIL") and not out.get("ADMIN_PASSWORD"):
        out["ADMIN_EMAIL"] = DEFAULT_ADMIN_EMAIL
        out["ADMIN_PASSWORD"] = DEFAULT_ADMIN_PASSWORD
    # Every service listens on loopback by default; STORE_GRPC_LISTEN etc. override.
    return out


def apply() -> dict[str, str]:
    """Adds the defaults to this process's environment and returns it."""
    env = local_env(os.environ)
    os.environ.update(env)
    return env
