"""store_svc settings, parsed once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service_kit.auth import TokenCodec
from service_kit.settings import SettingsError, env_choice, env_float, env_int, env_str


@dataclass(frozen=True, slots=True)
class ClickHouseSettings:
    """Where the ClickHouse event store lives (names as in the seed's .env)."""

    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Every knob of the event store service.

    Invariant: values are validated here, so the service never starts with
    a setting it cannot honour.
    """

    listen: str
    backend: str
    data_dir: Path
    clickhouse: ClickHouseSettings
    batch_max_events: int
    batch_max_delay: float
    snapshot_every: int
    subscriber_buffer: int
    jwt_secret: str = field(repr=False)
    jwt_ttl_seconds: int = 3600

    def token_codec(self) -> TokenCodec:
        return TokenCodec(self.jwt_secret, ttl_seconds=self.jwt_ttl_seconds)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "events.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        codec = TokenCodec.from_env(env)  # validates JWT_SECRET and JWT_TTL_SECONDS
        host_port = env_str(env, "CLICKHOUSE_HOST", "127.0.0.1:9000")
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"CLICKHOUSE_HOST={host_port!r}: expected host:port")
        return cls(
            listen=env_str(env, "STORE_GRPC_LISTEN", "127.0.0.1:9090"),
            backend=env_choice(env, "EVENT_STORE_BACKEND", "sqlite", ("sqlite", "clickhouse")),
            data_dir=Path(env_str(env, "DATA_DIR", "data")),
            clickhouse=ClickHouseSettings(
                host=host,
                port=int(port),
                user=env_str(env, "CLICKHOUSE_USER", "default"),
                password=env.get("CLICKHOUSE_PASSWORD", ""),
                database=env_str(env, "CLICKHOUSE_DB", "events"),
            ),
            batch_max_events=env_int(
                env, "STORE_BATCH_MAX_EVENTS", 500, minimum=1, maximum=100_000
            ),
            batch_max_delay=env_float(
                env, "STORE_BATCH_MAX_DELAY_MS", 2.0, minimum=0.0, maximum=1000.0
            )
            / 1000.0,
            snapshot_every=env_int(env, "SNAPSHOT_EVERY", 100, minimum=0, maximum=1_000_000),
            jwt_secret=env["JWT_SECRET"],
            jwt_ttl_seconds=codec.ttl_seconds,
            subscriber_buffer=env_int(
                env, "STORE_SUBSCRIBER_BUFFER", 1000, minimum=10, maximum=1_000_000
            ),
        )
