"""Tables of the read model's database that are not projections: sessions and the mailer.

They live beside the read model (so every query_svc instance shares them)
but are not rebuilt from events: a rebuild swaps only the projection
tables (``query_svc.db.TABLE_NAMES``) and leaves these alone.

- ``sessions``: one row per login; ``cv`` is the credential version its
  tokens carry, ``revoked_at``/``revoked_reason`` are set when it ends;
- ``refresh_tokens``: only the SHA-256 of each refresh token (never the
  token); ``used_at`` is set when it is traded for the next one, so a
  second use is recognised as reuse;
- ``mail_outbox``: the mailer's checkpoint (last event position handled)
  and its lease (``holder`` until ``lease_until``), so one instance sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

from query_svc.db import UtcDateTime

__all__ = ["SESSION_TABLES", "SessionTables", "define_session_tables"]


@dataclass(frozen=True, slots=True)
class SessionTables:
    """The three tables, under one MetaData."""

    metadata: MetaData
    sessions: Table
    refresh_tokens: Table
    mail_outbox: Table


def define_session_tables() -> SessionTables:
    md = MetaData()
    sessions = Table(
        "sessions",
        md,
        Column("id", String(64), primary_key=True),
        Column("user_id", String(128), nullable=False),
        Column("cv", Integer, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("last_refreshed_at", UtcDateTime, nullable=True),
        Column("expires_at", UtcDateTime, nullable=False),
        Column("revoked_at", UtcDateTime, nullable=True),
        Column("revoked_reason", String(500), nullable=False),
        Column("client_address", String(255), nullable=False),
    )
    Index("ix_sessions_user_created", sessions.c.user_id, sessions.c.created_at)
    refresh_tokens = Table(
        "refresh_tokens",
        md,
        Column("token_hash", String(64), primary_key=True),
        Column("session_id", String(64), nullable=False),
        Column("issued_at", UtcDateTime, nullable=False),
        Column("used_at", UtcDateTime, nullable=True),
    )
    Index("ix_refresh_tokens_session", refresh_tokens.c.session_id)
    mail_outbox = Table(
        "mail_outbox",
        md,
        Column("name", String(64), primary_key=True),
        Column("position", BigInteger, nullable=False),
        Column("holder", String(64), nullable=False),
        Column("lease_until", UtcDateTime, nullable=True),
    )
    return SessionTables(md, sessions, refresh_tokens, mail_outbox)


SESSION_TABLES: Final = define_session_tables()
