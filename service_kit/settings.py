"""Reading settings from the environment, once, with errors naming the variable.

Each service declares a frozen dataclass of its settings and fills it with
these helpers in a ``from_env`` constructor; a bad value stops the service
at start with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable's value, or the default when unset or empty."""
    value = env.get(name, "")
    return value if value != "" else default


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer within [minimum, maximum]."""
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not an integer") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def env_float(
    env: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float
) -> float:
    """A number within [minimum, maximum]."""
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not a number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value}: must be between {minimum} and {maximum}")
    return value


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of a fixed set of words."""
    value = env_str(env, name, default)
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: must be one of {', '.join(choices)}")
    return value


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ


def proxy_services(env: Mapping[str, str]) -> tuple[str, ...]:
    """``PROXY_SERVICES``: the services whose ``x-forwarded-for`` is believed when they
    prove who they are (``service_kit.client_address``); default the gateway, ``none``: nobody.
    """
    raw = env_str(env, "PROXY_SERVICES", "gateway").strip()
    if raw.lower() == "none":
        return ()
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(f"PROXY_SERVICES: {name!r} is not a service name")
    return names


def env_targets(env: Mapping[str, str], name: str, default: str) -> str:
    """``host:port``, or several comma-separated (a leader and its standbys, tried in
    turn: service_kit.leader_channel); returned without blanks."""
    value = env_str(env, name, default)
    targets = [t.strip() for t in value.split(",") if t.strip()]
    for target in targets:
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"{name}={value!r}: expected host:port[,host:port...]")
    if not targets:
        raise SettingsError(f"{name}={value!r}: expected host:port[,host:port...]")
    return ",".join(targets)


def env_listen(env: Mapping[str, str], name: str, default: str) -> str:
    """A ``host:port`` to listen on (``[::1]:9090`` for IPv6; port 0 picks a free
    one); the host is not resolved here (a bind reports it)."""
    value = env_str(env, name, default).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"{name}={value!r}: expected host:port with a port 0..65535")
    return value
