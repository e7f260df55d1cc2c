"""settings: defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from query_svc.settings import LoginLimits, QuerySettings
from service_kit.settings import SettingsError

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    s = QuerySettings.from_env({})
    assert s.listen == "127.0.0.1:9095"
    assert s.db_backend == "sqlite"
    assert s.sqlite_path == Path("data") / "read_model.sqlite3"
    assert s.store_target == "127.0.0.1:9090"
    assert s.command_target == "127.0.0.1:9091"
    assert s.postgres.port == 5433
    assert s.postgres.schema == "public"
    assert s.wait_timeout_seconds == 5.0
    assert s.login_limits == LoginLimits()
    assert s.login_limits.max_failures_per_pair == 5
    assert s.login_limits.max_failures_per_address == 100
    assert s.login_limits.window_seconds == 900
    assert s.trusted_proxies == ()
    assert s.proxy_services == ("gateway",)
    assert s.tokens.keys_dir == Path("data/keys") and s.tokens.ttl_seconds == 900
    assert s.refresh_ttl_seconds == 14 * 86_400
    assert (s.reset_limits.max_per_email, s.reset_limits.max_per_address) == (3, 10)
    assert s.mail.smtp.host == "" and s.mail.smtp.folder == Path("data/mail")


def test_mail_settings() -> None:
    s = QuerySettings.from_env(
        {
            "SMTP_HOST": "mail",
            "SMTP_PORT": "1025",
            "SMTP_FROM": "Accounts <accounts@example.com>",
            "SMTP_STARTTLS": "true",
            "SMTP_USERNAME": "u",
            "SMTP_PASSWORD": "smtp-secret",
            "PUBLIC_URL": "https://accounts.example.com/",
        }
    )
    smtp = s.mail.smtp
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username) == ("mail", 1025, True, "u")
    assert s.mail.public_url == "https://accounts.example.com"
    assert "smtp-secret" not in repr(s)


def test_postgres_and_limits_from_env() -> None:
    s = QuerySettings.from_env(
        {
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
        ({"JWT_TTL_SECONDS": "x"}, "JWT_TTL_SECONDS"),
        ({"REFRESH_TOKEN_TTL_SECONDS": "1"}, "REFRESH_TOKEN_TTL_SECONDS"),
        ({"PASSWORD_RESET_MAX_PER_EMAIL": "0"}, "PASSWORD_RESET_MAX_PER_EMAIL"),
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
        ({"SMTP_USERNAME": "u"}, "SMTP_USERNAME"),
        ({"SMTP_FROM": "nobody"}, "SMTP_FROM"),
        ({"PUBLIC_URL": "ftp://x"}, "PUBLIC_URL"),
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
    with pytest.raises(SettingsError, match=name):
        QuerySettings.from_env(env)
