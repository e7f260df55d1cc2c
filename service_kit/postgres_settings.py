"""Where the project's PostgreSQL is, read once from ``POSTGRES_QUERY_*``.

query_svc keeps its read model there; command_svc keeps its shared budgets
there too (``COMMAND_LIMITS_BACKEND=postgres``), so both read the same
variables, named as in the seed's ``.env``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.engine import URL

from service_kit.settings import SettingsError, env_int, env_str

__all__ = ["PostgresSettings"]

_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """A PostgreSQL database and the schema its tables go in.

    ``schema`` is where the tables go (created if missing); tests use a
    unique one per session so that they never touch each other's rows.
    Invariant: ``schema`` is a plain lower-case identifier (it is quoted
    into DDL and ``search_path``).
    """

    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)
    database: str = "query_db"
    schema: str = "public"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostgresSettings:
        """``POSTGRES_QUERY_{HOST,PORT,USER,PASSWORD,DB,SCHEMA}``; raises ``SettingsError``."""
        schema = env_str(env, "POSTGRES_QUERY_SCHEMA", "public")
        if not _SCHEMA_NAME.match(schema):
            raise SettingsError(
                f"POSTGRES_QUERY_SCHEMA={schema!r}: lower-case letters, digits and '_' only"
            )
        return cls(
            host=env_str(env, "POSTGRES_QUERY_HOST", "127.0.0.1"),
            port=env_int(env, "POSTGRES_QUERY_PORT", 5433, minimum=1, maximum=65535),
            user=env_str(env, "POSTGRES_QUERY_USER", "postgres"),
            password=env.get("POSTGRES_QUERY_PASSWORD", ""),
            database=env_str(env, "POSTGRES_QUERY_DB", "query_db"),
            schema=schema,
        )

    def url(self, *, statement_cache: bool = False) -> URL:
        """The asyncpg URL; asyncpg's prepared-statement cache only when asked for
        (query_svc asks: see query_svc/db.py for why its rebuilds do not break it)."""
        return URL.create(
            "postgresql+asyncpg",
            username=self.user,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.database,
            query={} if statement_cache else {"prepared_statement_cache_size": "0"},
        )

    @property
    def where(self) -> str:
        """``PostgreSQL at host:port``, for messages."""
        return f"PostgreSQL at {self.host}:{self.port}"
