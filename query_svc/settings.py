"""query_svc settings, parsed once from the environment.

Invariant: every value is validated here, so the service never starts with
a setting it cannot honour; a bad value raises ``SettingsError`` naming the
variable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pii.settings import KEYS_FILE, PiiSettings
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
    env_str,
    env_targets,
    proxy_services,
)

BACKENDS = ("sqlite", "postgres")
EVENT_SOURCES = ("store", "kafka")  # both behind the same EventSource port


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """The relay's topic, read when ``QUERY_EVENT_SOURCE=kafka`` (query_svc.kafka_source).

    ``gap_timeout`` is how long a missing position may still come from Kafka
    while later ones wait, before it is read from the store instead.
    """

    broker: str = "127.0.0.1:9092"
    topic: str = "user-events"
    group: str = "query-group"
    gap_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class DatabaseLimits:
    """How long the read model's database may take, and when it counts as down.

    ``read``/``write``: the most one read (a query's connection use) or one
    write transaction (the projector's, the rebuild's) may take, connect and
    pool wait included; a request's own deadline can only make them shorter.
    ``breaker_failures`` outages in a row open the circuit breaker, which
    then refuses calls at once and probes again every ``breaker_reset`` s.
    """

    read: float = 2.0
    write: float = 10.0
    breaker_failures: int = 3
    breaker_reset: float = 2.0


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Login budgets (the policy is :mod:`query_svc.login_attempts`'s docstring).

    Failures per email+address pair, per email and per address within
    ``window_seconds`` (the last two skip known pairs: an address the
    account logged in from within ``known_pair_days``); successful logins
    per email within ``logins_window_seconds``; one login event per
    account and address per ``record_every_seconds``.
    """

    max_failures_per_pair: int = 5
    max_failures_per_email: int = 30
    max_failures_per_address: int = 100
    window_seconds: int = 900
    max_logins_per_email: int = 30
    logins_window_seconds: int = 60
    known_pair_days: int = 30
    record_every_seconds: int = 60


@dataclass(frozen=True, slots=True)
class ResetLimits:
    """Password reset requests allowed per address and per client within a window."""

    max_per_email: int = 3
    max_per_address: int = 10
    window_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where mail goes: an SMTP server when ``host`` is set, else files in ``folder``.

    ``starttls`` upgrades the connection (``SMTP_STARTTLS=true``); ``username``
    and ``password`` log in when given. The password is kept out of ``repr``.
    """

    host: str = ""
    port: int = 25
    sender: str = "cqrs-users <no-reply@localhost>"
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0
    folder: Path = Path("data/mail")


_DEFAULT_LIFETIMES: Final = TokenLifetimes()


@dataclass(frozen=True, slots=True)
class MailSettings:
    """The mailer: transport, links in the mails, and how long tokens are valid (for the text)."""

    smtp: SmtpSettings = SmtpSettings()
    public_url: str = "http://127.0.0.1:8088"
    lifetimes: TokenLifetimes = _DEFAULT_LIFETIMES


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySettings:
    """Every knob of the query service (see the README's configuration table).

    Secrets (the SMTP password) are kept out of ``repr``; keys are read from
    ``KEYS_DIR`` at start.
    """

    listen: str
    data_dir: Path
    db_backend: str
    postgres: PostgresSettings
    db_limits: DatabaseLimits = DatabaseLimits()
    event_source: str
    kafka: KafkaSettings = KafkaSettings()
    pii: PiiSettings | None = None
    store_target: str
    command_target: str
    tokens: TokenSettings
    refresh_ttl_seconds: int = 1_209_600
    reset_limits: ResetLimits = ResetLimits()
    mail: MailSettings = MailSettings()
    wait_timeout_seconds: float
    rpc_timeout_seconds: float
    login_timeout_seconds: float = 10.0
    login_limits: LoginLimits
    trusted_proxies: tuple[str, ...] = ()
    proxy_services: tuple[str, ...] = ("gateway",)
    projector_batch_max: int
    projector_stall_after: float = 3.0
    bcrypt_cost: int

    @property
    def sqlite_path(self) -> Path:
        """The embedded read model's file."""
        return self.data_dir / "read_model.sqlite3"

    @property
    def pii_settings(self) -> PiiSettings:
        """The key store's settings; by default its file sits in ``data_dir``."""
        return self.pii or PiiSettings(self.data_dir / KEYS_FILE)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QuerySettings:
        """Reads and validates every variable; raises ``SettingsError`` naming a bad one."""
        data_dir = Path(env_str(env, "DATA_DIR", "data"))
        return cls(
            listen=env_listen(env, "QUERY_GRPC_LISTEN", "127.0.0.1:9095"),
            data_dir=data_dir,
            db_backend=env_choice(env, "QUERY_DB_BACKEND", "sqlite", BACKENDS),
            postgres=PostgresSettings.from_env(env),
            db_limits=DatabaseLimits(
                read=_ms(env, "QUERY_DB_READ_TIMEOUT_MS", 2000),
                write=_ms(env, "QUERY_DB_WRITE_TIMEOUT_MS", 10_000),
                breaker_failures=env_int(
                    env, "QUERY_DB_BREAKER_FAILURES", 3, minimum=1, maximum=1000
                ),
                breaker_reset=_ms(env, "QUERY_DB_BREAKER_RESET_MS", 2000),
            ),
            event_source=env_choice(env, "QUERY_EVENT_SOURCE", "store", EVENT_SOURCES),
            kafka=KafkaSettings(
                broker=env_str(env, "KAFKA_BROKER", "127.0.0.1:9092"),
                topic=env_str(env, "KAFKA_TOPIC", "user-events"),
                group=env_str(env, "KAFKA_GROUP", "query-group"),
                gap_timeout=env_int(
                    env, "QUERY_KAFKA_GAP_TIMEOUT_MS", 2000, minimum=10, maximum=600_000
                )
                / 1000.0,
            ),
            pii=PiiSettings.from_env(env),
            store_target=env_targets(env, "STORE_GRPC_TARGET", "127.0.0.1:9090"),
            command_target=env_str(env, "COMMAND_GRPC_TARGET", "127.0.0.1:9091"),
            tokens=TokenSettings.from_env(env),
            refresh_ttl_seconds=env_int(
                env, "REFRESH_TOKEN_TTL_SECONDS", 1_209_600, minimum=60, maximum=365 * 86_400
            ),
            reset_limits=ResetLimits(
                max_per_email=env_int(
                    env, "PASSWORD_RESET_MAX_PER_EMAIL", 3, minimum=1, maximum=1_000_000
                ),
                max_per_address=env_int(
                    env, "PASSWORD_RESET_MAX_PER_ADDRESS", 10, minimum=1, maximum=1_000_000
                ),
                window_seconds=env_int(
                    env, "PASSWORD_RESET_WINDOW_SECONDS", 3600, minimum=1, maximum=86_400
                ),
            ),
            mail=_mail(env, data_dir),
            wait_timeout_seconds=env_int(
                env, "QUERY_WAIT_TIMEOUT_MS", 5000, minimum=0, maximum=600_000
            )
            / 1000.0,
            rpc_timeout_seconds=env_int(
                env, "QUERY_RPC_TIMEOUT_MS", 5000, minimum=100, maximum=600_000
            )
            / 1000.0,
            login_timeout_seconds=_ms(env, "QUERY_LOGIN_TIMEOUT_MS", 10_000),
            login_limits=_login_limits(env),
            trusted_proxies=_proxies(env_str(env, "QUERY_TRUSTED_PROXIES", "none")),
            proxy_services=proxy_services(env),
            projector_batch_max=env_int(
                env, "QUERY_PROJECTOR_BATCH_MAX", 2000, minimum=1, maximum=100_000
            ),
            projector_stall_after=_ms(env, "QUERY_PROJECTOR_STALL_MS", 3000),
            bcrypt_cost=env_int(
                env, "BCRYPT_COST", DEFAULT_COST, minimum=MIN_COST, maximum=MAX_COST
            ),
        )


def _ms(env: Mapping[str, str], name: str, default: int) -> float:
    """A duration given in milliseconds (50 ms .. 10 min), in seconds."""
    return env_int(env, name, default, minimum=50, maximum=600_000) / 1000.0


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in _TRUE + _FALSE:
        raise SettingsError(f"{name}={raw!r}: expected true or false")
    return raw in _TRUE


def _mail(env: Mapping[str, str], data_dir: Path) -> MailSettings:
    """``SMTP_*``, ``MAIL_DIR``, ``PUBLIC_URL``, ``EMAIL_VERIFICATION_TTL_SECONDS``."""
    host = env_str(env, "SMTP_HOST", "")
    username = env_str(env, "SMTP_USERNAME", "")
    password = env.get("SMTP_PASSWORD", "")
    if bool(username) != bool(password):
        raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD: give both or neither")
    sender = env_str(env, "SMTP_FROM", "cqrs-users <no-reply@localhost>")
    if "@" not in sender or "\n" in sender or "\r" in sender:
        raise SettingsError(f"SMTP_FROM={sender!r}: not a mail address")
    public_url = env_str(env, "PUBLIC_URL", "http://127.0.0.1:8088").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise SettingsError(f"PUBLIC_URL={public_url!r}: must start with http:// or https://")
    return MailSettings(
        smtp=SmtpSettings(
            host=host,
            port=env_int(env, "SMTP_PORT", 25, minimum=1, maximum=65535),
            sender=sender,
            starttls=_flag(env, "SMTP_STARTTLS"),
            username=username,
            password=password,
            timeout=env_float(env, "SMTP_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=300.0),
            folder=Path(env_str(env, "MAIL_DIR", str(data_dir / "mail"))),
        ),
        public_url=public_url,
        lifetimes=TokenLifetimes.from_env(env),
    )


def _login_limits(env: Mapping[str, str]) -> LoginLimits:
    d = LoginLimits()

    def count(name: str, default: int) -> int:
        return env_int(env, name, default, minimum=1, maximum=1_000_000)

    def seconds(name: str, default: int) -> int:
        return env_int(env, name, default, minimum=1, maximum=86400)

    return LoginLimits(
        max_failures_per_pair=count("LOGIN_MAX_FAILURES_PER_PAIR", d.max_failures_per_pair),
        max_failures_per_email=count("LOGIN_MAX_FAILURES_PER_EMAIL", d.max_failures_per_email),
        max_failures_per_address=count(
            "LOGIN_MAX_FAILURES_PER_ADDRESS", d.max_failures_per_address
        ),
        window_seconds=seconds("LOGIN_FAILURE_WINDOW_SECONDS", d.window_seconds),
        max_logins_per_email=count("LOGIN_MAX_SUCCESSES_PER_EMAIL", d.max_logins_per_email),
        logins_window_seconds=seconds("LOGIN_SUCCESS_WINDOW_SECONDS", d.logins_window_seconds),
        known_pair_days=env_int(
            env, "LOGIN_KNOWN_ADDRESS_DAYS", d.known_pair_days, minimum=1, maximum=3650
        ),
        record_every_seconds=seconds("LOGIN_RECORD_EVERY_SECONDS", d.record_every_seconds),
    )


def _proxies(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses whose ``x-forwarded-for`` header is believed.

    ``none`` trusts no proxy: the peer address is then always the client's.
    """
    if raw.strip().lower() == "none":
        return ()
    out: list[str] = []
    for entry in raw.split(","):
        item = entry.strip()
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise SettingsError(f"QUERY_TRUSTED_PROXIES: {item!r} is not an IP address") from None
    return tuple(out)
