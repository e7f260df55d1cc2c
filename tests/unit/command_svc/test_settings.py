"""CommandSettings.from_env: defaults, and errors naming the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from command_svc.settings import AdminAccount, CommandSettings
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    s = CommandSettings.from_env({})
    assert s.listen == "127.0.0.1:9091"
    assert s.store_target == "127.0.0.1:9090"
    assert (s.bcrypt_cost, s.tokens.ttl_seconds, s.max_attempts) == (12, 900, 5)
    assert s.tokens.keys_dir == Path("data/keys")
    assert s.admin is None
    assert s.aggregate_cache_size == 10_000
    assert s.lifetimes.password_reset == timedelta(minutes=30)
    assert s.lifetimes.email_verification == timedelta(days=2)


def test_overrides_and_admin_email_normalised() -> None:
    s = CommandSettings.from_env(
        {
            "DATA_DIR": "/var/lib/x",
            "PASSWORD_RESET_TTL_SECONDS": "600",
            "COMMAND_GRPC_LISTEN": "0.0.0.0:1",
            "STORE_GRPC_TARGET": "store:9090",
            "BCRYPT_COST": "4",
            "JWT_TTL_SECONDS": "60",
            "ADMIN_EMAIL": " Root@Example.com ",
            "ADMIN_PASSWORD": "admin-password",
        }
    )
    assert s.tokens.keys_dir == Path("/var/lib/x/keys")
    assert s.lifetimes.password_reset == timedelta(minutes=10)
    assert (s.listen, s.store_target, s.bcrypt_cost, s.tokens.ttl_seconds) == (
        "0.0.0.0:1",
        "store:9090",
        4,
        60,
    )
    assert s.admin == AdminAccount("root@example.com", "admin-password")


def test_aggregate_cache_size_zero_disables() -> None:
    s = CommandSettings.from_env({"COMMAND_AGGREGATE_CACHE_SIZE": "0"})
    assert s.aggregate_cache_size == 0


def test_secrets_are_not_in_repr() -> None:
    s = CommandSettings.from_env(
        {"ADMIN_EMAIL": "r@example.com", "ADMIN_PASSWORD": "admin-password"}
    )
    assert "admin-password" not in repr(s)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JWT_TTL_SECONDS": "0"}, "JWT_TTL_SECONDS"),
        ({"PASSWORD_RESET_TTL_SECONDS": "0"}, "PASSWORD_RESET_TTL_SECONDS"),
        ({"EMAIL_VERIFICATION_TTL_SECONDS": "x"}, "EMAIL_VERIFICATION_TTL_SECONDS"),
        ({"BCRYPT_COST": "3"}, "BCRYPT_COST"),
        ({"BCRYPT_COST": "x"}, "BCRYPT_COST"),
        ({"COMMAND_MAX_ATTEMPTS": "0"}, "COMMAND_MAX_ATTEMPTS"),
        ({"COMMAND_STORE_TIMEOUT_SECONDS": "0"}, "COMMAND_STORE_TIMEOUT_SECONDS"),
        ({"COMMAND_AGGREGATE_CACHE_SIZE": "-1"}, "COMMAND_AGGREGATE_CACHE_SIZE"),
        ({"COMMAND_AGGREGATE_CACHE_SIZE": "many"}, "COMMAND_AGGREGATE_CACHE_SIZE"),
        ({"ADMIN_EMAIL": "r@example.com"}, "ADMIN_PASSWORD"),
        ({"ADMIN_PASSWORD": "admin-password"}, "ADMIN_EMAIL"),
        ({"ADMIN_EMAIL": "nope", "ADMIN_PASSWORD": "admin-password"}, "ADMIN_EMAIL"),
        ({"ADMIN_EMAIL": "r@example.com", "ADMIN_PASSWORD": "short"}, "ADMIN_PASSWORD"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=rf"^{variable}"):
        CommandSettings.from_env(env)


def test_the_store_may_be_a_leader_and_its_standby() -> None:
    s = CommandSettings.from_env({"STORE_GRPC_TARGET": "store:9090, standby:9090"})
    assert s.store_target == "store:9090,standby:9090"
    with pytest.raises(SettingsError, match="STORE_GRPC_TARGET"):
        CommandSettings.from_env({"STORE_GRPC_TARGET": "store:9090,standby"})
