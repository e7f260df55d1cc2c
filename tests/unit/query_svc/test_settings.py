"""settings: defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from query_svc.settings import QuerySettings
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit

SECRET = "s" * 32


def test_defaults() -> None:
    s = QuerySettings.from_env({"JWT_SECRET": SECRET})
    assert s.listen == "127.0.0.1:9095"
    assert s.db_backend == "sqlite"
    assert s.sqlite_path == Path("data") / "read_model.sqlite3"
    assert s.store_target == "127.0.0.1:9090"
    assert s.command_target == "127.0.0.1:9091"
    assert s.postgres.port == 5433
    assert s.postgres.schema == "public"
    assert s.wait_timeout_seconds == 5.0
    assert s.login_limits.max_failures_per_email == 5
    assert s.login_limits.max_failures_per_address == 20
    assert s.login_limits.window_seconds == 300
    assert s.trusted_proxies == ("127.0.0.1", "::1")
    assert SECRET not in repr(s)


def test_postgres_and_limits_from_env() -> None:
    s = QuerySettings.from_env(
        {
            "JWT_SECRET": SECRET,
            "QUERY_DB_BACKEND": "postgres",
            "POSTGRES_QUERY_HOST": "db",
            "POSTGRES_QUERY_PORT": "15433",
            "POSTGRES_QUERY_PASSWORD": "pw",
            "POSTGRES_QUERY_SCHEMA": "t_1",
            "QUERY_WAIT_TIMEOUT_MS": "250",
            "LOGIN_MAX_FAILURES_PER_EMAIL": "3",
            "QUERY_TRUSTED_PROXIES": "none",
        }
    )
    assert (s.postgres.host, s.postgres.port, s.postgres.schema) == ("db", 15433, "t_1")
    assert "pw" not in repr(s.postgres)
    assert s.wait_timeout_seconds == 0.25
    assert s.login_limits.max_failures_per_email == 3
    assert s.trusted_proxies == ()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "JWT_SECRET"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"QUERY_DB_BACKEND": "mysql"}, "QUERY_DB_BACKEND"),
        ({"POSTGRES_QUERY_PORT": "http"}, "POSTGRES_QUERY_PORT"),
        ({"POSTGRES_QUERY_SCHEMA": "x; drop"}, "POSTGRES_QUERY_SCHEMA"),
        ({"QUERY_WAIT_TIMEOUT_MS": "-1"}, "QUERY_WAIT_TIMEOUT_MS"),
        ({"LOGIN_FAILURE_WINDOW_SECONDS": "0"}, "LOGIN_FAILURE_WINDOW_SECONDS"),
        ({"QUERY_TRUSTED_PROXIES": "gateway"}, "QUERY_TRUSTED_PROXIES"),
        ({"BCRYPT_COST": "99"}, "BCRYPT_COST"),
        ({"QUERY_EVENT_SOURCE": "carrier-pigeon"}, "QUERY_EVENT_SOURCE"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], name: str) -> None:
    full = {"JWT_SECRET": SECRET, **env} if name != "JWT_SECRET" else env
    with pytest.raises(SettingsError, match=name):
        QuerySettings.from_env(full)
