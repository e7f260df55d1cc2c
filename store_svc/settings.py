"""store_svc settings, parsed once from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pii.settings import KEYS_FILE, PiiSettings
from service_kit.auth import TokenSettings
from service_kit.settings import SettingsError, env_choice, env_float, env_int, env_listen, env_str
from store_svc.engine import ClickHouseConfig

# Kafka's rule for topic names.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The outbox relay to Kafka (store_svc.relay); off on the embedded defaults.

    ``enabled`` when ``STORE_RELAY=kafka``, or when ``KAFKA_BROKER`` is set and
    ``STORE_RELAY`` is not ``off``.
    """

    enabled: bool = False
    broker: str = "127.0.0.1:9092"
    topic: str = "user-events"
    save_interval: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RelaySettings:
        broker = env_str(env, "KAFKA_BROKER", "")
        mode = env_choice(env, "STORE_RELAY", "kafka" if broker else "off", ("off", "kafka"))
        topic = env_str(env, "KAFKA_TOPIC", "user-events")
        if not _TOPIC.match(topic):
            raise SettingsError(
                f"KAFKA_TOPIC={topic!r}: 1-249 letters, digits, '.', '_' or '-' only"
            )
        return cls(
            enabled=mode == "kafka",
            broker=broker or "127.0.0.1:9092",
            topic=topic,
            save_interval=env_int(
                env, "STORE_RELAY_SAVE_INTERVAL_MS", 1000, minimum=10, maximum=60_000
            )
            / 1000.0,
        )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Every knob of the event store service.

    Invariant: values are validated here, so the service never starts with
    a setting it cannot honour.
    """

    listen: str
    backend: str
    data_dir: Path
    clickhouse: ClickHouseConfig
    batch_max_events: int
    batch_max_delay: float
    snapshot_every: int
    subscriber_buffer: int
    stream_cache_events: int
    tokens: TokenSettings
    head_cache_size: int = 100_000  # stream heads kept in memory (LRU)
    claim_cache_size: int = 100_000  # claim owners (e-mail addresses) kept in memory (LRU)
    relay: RelaySettings = RelaySettings()
    standby: bool = False  # wait for the writer lock instead of exiting when it is held
    pii: PiiSettings | None = None

    @property
    def pii_settings(self) -> PiiSettings:
        """The key store's settings; by default its file sits in ``data_dir``."""
        return self.pii or PiiSettings(self.data_dir / KEYS_FILE)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "events.sqlite3"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreSettings:
        host_port = env_str(env, "CLICKHOUSE_HOST", "127.0.0.1:9000")
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(f"CLICKHOUSE_HOST={host_port!r}: expected host:port")
        lease_ttl = env_int(env, "STORE_LEASE_TTL_MS", 15_000, minimum=1000, maximum=600_000)
        heartbeat = env_int(env, "STORE_LEASE_HEARTBEAT_MS", 3000, minimum=100, maximum=300_000)
        if heartbeat * 2 >= lease_ttl:
            raise SettingsError(
                f"STORE_LEASE_HEARTBEAT_MS={heartbeat}: must be less than half of "
                f"STORE_LEASE_TTL_MS={lease_ttl}"
            )
        try:  # the engine's own parser reads the CLICKHOUSE_* variables
            clickhouse = ClickHouseConfig.from_env(
                env,
                default_host=host_port,
                lease_ttl=lease_ttl / 1000.0,
                lease_heartbeat=heartbeat / 1000.0,
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            listen=env_listen(env, "STORE_GRPC_LISTEN", "127.0.0.1:9090"),
            backend=env_choice(env, "EVENT_STORE_BACKEND", "sqlite", ("sqlite", "clickhouse")),
            data_dir=Path(env_str(env, "DATA_DIR", "data")),
            clickhouse=clickhouse,
            batch_max_events=env_int(
                env, "STORE_BATCH_MAX_EVENTS", 500, minimum=1, maximum=100_000
            ),
            batch_max_delay=env_float(
                env, "STORE_BATCH_MAX_DELAY_MS", 2.0, minimum=0.0, maximum=1000.0
            )
            / 1000.0,
            snapshot_every=env_int(env, "SNAPSHOT_EVERY", 100, minimum=0, maximum=1_000_000),
            tokens=TokenSettings.from_env(env),
            stream_cache_events=env_int(
                env, "STORE_STREAM_CACHE_EVENTS", 100_000, minimum=0, maximum=10_000_000
            ),
            subscriber_buffer=env_int(
                env, "STORE_SUBSCRIBER_BUFFER", 1000, minimum=10, maximum=1_000_000
            ),
            head_cache_size=env_int(
                env, "STORE_HEAD_CACHE_SIZE", 100_000, minimum=1, maximum=100_000_000
            ),
            claim_cache_size=env_int(
                env, "STORE_CLAIM_CACHE_SIZE", 100_000, minimum=1, maximum=100_000_000
            ),
            relay=RelaySettings.from_env(env),
            standby=env_choice(env, "STORE_STANDBY", "0", ("0", "1")) == "1",
            pii=PiiSettings.from_env(env),
        )
