"""At start, store_svc destroys the key of every user the log says is erased."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pii.codec import PayloadCodec
from pii.keystore import KeyStore
from store_svc.engine import RecordedEvent
from store_svc.shredding import shred_erased

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Log:
    """The store's events of one type, paged like ``EventStore.read_all``."""

    def __init__(self, erased: list[str]) -> None:
        self.records = [
            RecordedEvent(
                i + 1,
                str(uuid.uuid4()),
                uid,
                "user",
                2,
                "user.erased",
                T0,
                json.dumps({"email": "", "actor": uid}).encode(),
                "",
                "",
            )
            for i, uid in enumerate(erased)
        ]

    async def read_all(
        self, *, after_position: int = 0, limit: int = 1000, event_types: tuple[str, ...] = ()
    ) -> list[RecordedEvent]:
        assert event_types == ("user.erased",)
        return [r for r in self.records if r.position > after_position][:limit]


async def test_keys_left_behind_by_a_crash_or_a_restore_are_destroyed(tmp_path: Path) -> None:
    codec = PayloadCodec(KeyStore(tmp_path / "keys.sqlite3", bytes(32)))
    erased, kept = str(uuid.uuid4()), str(uuid.uuid4())
    for uid in (erased, kept):
        assert codec.keys.cipher(uid, create=True) is not None
    assert await shred_erased(Log([erased]), codec) == 1
    assert codec.keys.is_erased(erased) and not codec.keys.is_erased(kept)
    assert await shred_erased(Log([erased]), codec) == 0  # idempotent
