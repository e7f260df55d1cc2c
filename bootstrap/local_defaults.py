"""Defaults ``make up`` fills in when the user did not: data folder, JWT secret, admin.

Invariant: a generated secret is kept in the data folder (mode 0600) and
reused on the next start, so tokens and data survive a restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

DEFAULT_ADMIN_EMAIL = "admin@example.com"
DEFAULT_ADMIN_PASSWORD = "admin-password-change-me"


def _kept_secret(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if len(value.encode()) >= 32:
            return value
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def local_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment with local defaults added where a variable is unset."""
    out = dict(env)
    data = Path(out.setdefault("DATA_DIR", "data"))
    data.mkdir(parents=True, exist_ok=True)
    if not out.get("JWT_SECRET"):
        out["JWT_SECRET"] = _kept_secret(data / "jwt_secret")
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
