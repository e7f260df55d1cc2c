"""command_svc settings, parsed once from the environment into a frozen object.

A bad value stops the service at start with the variable's name in the
message (``SettingsError``). Secrets (``ADMIN_PASSWORD``) are kept out of
``repr``; keys are read from ``KEYS_DIR`` at start, never held here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import domain
from command_svc.abuse_limits import AbuseLimits
from service_kit.auth import TokenSettings
from service_kit.mail_tokens import TokenLifetimes
from service_kit.passwords import DEFAULT_COST, MAX_COST, MIN_COST
from service_kit.postgres_settings import PostgresSettings
from service_kit.settings import (
    SettingsError,
    env_choice,
    env_float,
    env_int,
    env_listen,
    env_targets,
    proxy_services,
)

__all__ = ["LIMITS_BACKENDS", "AdminAccount", "CommandSettings"]

LIMITS_BACKENDS: Final = ("memory", "postgres")


_DEFAULT_TOKENS: Final = TokenSettings(Path("data/keys"))
_DEFAULT_LIFETIMES: Final = TokenLifetimes()


@dataclass(frozen=True, slots=True)
class AdminAccount:
    """The admin to register at start (``ADMIN_EMAIL``/``ADMIN_PASSWORD``), email normalised."""

    email: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSettings:
    """Every knob of command_svc.

    Invariant: every value was validated here (the admin account by the
    domain's own rules), so the service never starts with a setting it
    cannot honour.
    """

    listen: str = "127.0.0.1:9091"
    store_target: str = "127.0.0.1:9090"
    store_timeout: float = 10.0
    command_timeout: float = 10.0
    tokens: TokenSettings = _DEFAULT_TOKENS
    lifetimes: TokenLifetimes = _DEFAULT_LIFETIMES
    bcrypt_cost: int = DEFAULT_COST
    max_attempts: int = 5
    idempotency_capacity: int = 10_000
    idempotency_ttl: float = 24 * 3600.0
    aggregate_cache_size: int = 10_000
    admin: AdminAccount | None = None
    limits: AbuseLimits = field(default_factory=AbuseLimits)
    # Where the budgets are counted: None in this process (``make up``), else the
    # PostgreSQL every instance shares (COMMAND_LIMITS_BACKEND=postgres).
    limits_database: PostgresSettings | None = None
    limits_database_timeout: float = 5.0
    proxy_services: tuple[str, ...] = ("gateway",)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommandSettings:
        return cls(
            listen=env_listen(env, "COMMAND_GRPC_LISTEN", "127.0.0.1:9091"),
            store_target=env_targets(env, "STORE_GRPC_TARGET", "127.0.0.1:9090"),
            store_timeout=env_float(
                env, "COMMAND_STORE_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=300.0
            ),
            command_timeout=env_float(
                env, "COMMAND_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=300.0
            ),
            tokens=TokenSettings.from_env(env),
            lifetimes=TokenLifetimes.from_env(env),
            bcrypt_cost=env_int(
                env, "BCRYPT_COST", DEFAULT_COST, minimum=MIN_COST, maximum=MAX_COST
            ),
            max_attempts=env_int(env, "COMMAND_MAX_ATTEMPTS", 5, minimum=1, maximum=50),
            idempotency_capacity=env_int(
                env, "COMMAND_IDEMPOTENCY_CAPACITY", 10_000, minimum=0, maximum=10_000_000
            ),
            idempotency_ttl=env_float(
                env, "COMMAND_IDEMPOTENCY_TTL_SECONDS", 86_400.0, minimum=1.0, maximum=7 * 86_400.0
            ),
            aggregate_cache_size=env_int(
                env, "COMMAND_AGGREGATE_CACHE_SIZE", 10_000, minimum=0, maximum=10_000_000
            ),
            admin=_admin_from_env(env),
            limits=_limits_from_env(env),
            limits_database=(
                PostgresSettings.from_env(env)
                if env_choice(env, "COMMAND_LIMITS_BACKEND", "memory", LIMITS_BACKENDS)
                == "postgres"
                else None
            ),
            proxy_services=proxy_services(env),
        )


def _limits_from_env(env: Mapping[str, str]) -> AbuseLimits:
    d = AbuseLimits()
    return AbuseLimits(
        register_per_address=env_int(
            env, "REGISTER_MAX_PER_ADDRESS", d.register_per_address, minimum=1, maximum=10**9
        ),
        register_window=env_int(
            env, "REGISTER_WINDOW_SECONDS", d.register_window, minimum=1, maximum=86_400
        ),
        password_checks=env_int(
            env, "PASSWORD_CHECK_MAX_FAILURES", d.password_checks, minimum=1, maximum=10**6
        ),
        password_window=env_int(
            env, "PASSWORD_CHECK_WINDOW_SECONDS", d.password_window, minimum=1, maximum=86_400
        ),
    )


def _admin_from_env(env: Mapping[str, str]) -> AdminAccount | None:
    email, password = env.get("ADMIN_EMAIL", ""), env.get("ADMIN_PASSWORD", "")
    if not email and not password:
        return None
    if not email:
        raise SettingsError("ADMIN_EMAIL: required when ADMIN_PASSWORD is set")
    if not password:
        raise SettingsError("ADMIN_PASSWORD: required when ADMIN_EMAIL is set")
    try:
        normalized = domain.normalize_email(email, field="ADMIN_EMAIL")
        domain.validate_password(password, field="ADMIN_PASSWORD")
    except domain.ValidationError as exc:
        raise SettingsError(str(exc)) from None
    return AdminAccount(normalized, password)
