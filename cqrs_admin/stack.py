"""Which stores a deployment has, read from the services' own settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from query_svc.db import Database
from query_svc.settings import QuerySettings
from store_svc import engine
from store_svc.engine.model import ClaimDigest
from store_svc.settings import StoreSettings

__all__ = ["Stack", "code_version"]


def code_version() -> str:
    """The installed project's version (what the services run, if installed together)."""
    try:
        return metadata.version("cqrs-users")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


@dataclass(frozen=True, slots=True)
class Stack:
    """The event store and read model the environment names (as the services read it)."""

    store: StoreSettings
    query: QuerySettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Stack:
        """Raises SettingsError naming a bad variable."""
        return cls(StoreSettings.from_env(env), QuerySettings.from_env(env))

    @property
    def embedded(self) -> bool:
        """Both stores are SQLite files in ``DATA_DIR`` (``make up``)."""
        return self.store.backend == "sqlite" and self.query.db_backend == "sqlite"

    @property
    def data_dir(self) -> Path:
        return self.store.data_dir

    @property
    def pg_schema(self) -> str:
        return self.query.postgres.schema if self.query.db_backend == "postgres" else ""

    def describe_event_store(self) -> str:
        if self.store.backend == "clickhouse":
            ch = self.store.clickhouse
            return f"ClickHouse {ch.host}:{ch.port}/{ch.database}"
        return f"SQLite {self.store.sqlite_path}"

    def describe_read_model(self) -> str:
        if self.query.db_backend == "postgres":
            pg = self.query.postgres
            return f"PostgreSQL {pg.host}:{pg.port}/{pg.database} schema {pg.schema}"
        return f"SQLite {self.query.sqlite_path}"

    async def open_event_store(
        self, *, migrate: bool = False, claim_digest: ClaimDigest | None = None
    ) -> engine.SqliteStorage | engine.ClickHouseStorage:
        """The event storage (checked, or migrated, like a starting store_svc does;
        ``claim_digest``: the key store's, for a migration that digests old claims)."""
        if self.store.backend == "clickhouse":
            return await engine.ClickHouseStorage.open(
                self.store.clickhouse, migrate=migrate, claim_digest=claim_digest
            )
        self.store.data_dir.mkdir(parents=True, exist_ok=True)
        return await engine.SqliteStorage.open(
            self.store.sqlite_path, migrate=migrate, claim_digest=claim_digest
        )

    def read_model(self) -> Database:
        """The read model's engines (nothing is connected or created yet)."""
        return Database.from_settings(self.query)
