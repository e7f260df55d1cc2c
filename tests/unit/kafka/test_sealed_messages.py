"""The Kafka topic carries the stored encoding: personal fields sealed, opened by query_svc."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pii.codec import ERASED, PayloadCodec
from pii.keystore import KeyStore
from query_svc.kafka_source import decode_record
from store_svc.engine import RecordedEvent
from store_svc.relay import kafka_message

pytestmark = pytest.mark.unit

MASTER = bytes(range(32))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = "kafka-person@example.com"


def _record(
    codec: PayloadCodec, user_id: str, position: int, event_type: str, payload: dict[str, str]
) -> RecordedEvent:
    sealed = codec.seal_event(event_type, payload, user_id)
    return RecordedEvent(
        position,
        str(uuid.uuid4()),
        user_id,
        "user",
        position,
        event_type,
        T0,
        json.dumps(sealed).encode(),
        "",
        "",
    )


def test_messages_hold_no_personal_value_in_clear_and_open_until_erasure(tmp_path: Path) -> None:
    path = tmp_path / "pii-keys.sqlite3"
    store_codec = PayloadCodec(KeyStore(path, MASTER))
    query_codec = PayloadCodec(KeyStore(path, MASTER))  # another instance, as query_svc has
    user_id = str(uuid.uuid4())
    created = kafka_message(
        _record(
            store_codec,
            user_id,
            1,
            "user.created",
            {"email": EMAIL, "password_hash": "h", "role": "user"},
        )
    )
    assert EMAIL.encode() not in created.value
    opened = decode_record(created.value, created.headers, query_codec)
    assert opened is not None and opened.payload["email"] == EMAIL
    assert opened.payload["password_hash"] == "h"  # the services' topic: secrets included

    erased = kafka_message(
        _record(store_codec, user_id, 2, "user.erased", {"email": EMAIL, "actor": user_id})
    )
    store_codec.erase(user_id, at="2026-01-01T00:00:00Z")
    # query_codec cached the key while opening user.created; the erasure record drops it.
    gone = decode_record(erased.value, erased.headers, query_codec)
    assert gone is not None and gone.payload["email"] == ERASED
    again = decode_record(created.value, created.headers, query_codec)
    assert again is not None and again.payload["email"] == ERASED
