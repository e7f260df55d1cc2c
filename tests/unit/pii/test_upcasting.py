"""Event versions: stored payloads of older versions (today's plaintext format included)
read as the current message."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

import domain
from domain.upcasting import SCHEMA_KEY, UPCASTERS, current_version, stamp, upcast
from pii.annotations import EVENT_PRIVACY
from pii.codec import ERASED, PayloadCodec
from pii.keystore import KeyStore
from store_svc.convert import event_to_pb, to_domain
from store_svc.engine import RecordedEvent

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_each_type_reads_the_version_the_contract_declares() -> None:
    for event_type, privacy in EVENT_PRIVACY.items():
        assert current_version(event_type) == privacy.version, event_type
    assert all(v < current_version(t) for t, v in UPCASTERS)  # no gap, no dead upcaster


def test_a_version_1_password_change_reads_as_version_2() -> None:
    v1 = {"password_hash": "h"}  # stored before sessions could be kept
    assert upcast("user.password.changed", v1) == {"password_hash": "h", "kept_session_id": ""}
    v2 = stamp("user.password.changed", {"password_hash": "h", "kept_session_id": "s1"})
    assert v2[SCHEMA_KEY] == 2
    assert upcast("user.password.changed", v2) == {"password_hash": "h", "kept_session_id": "s1"}
    assert SCHEMA_KEY not in stamp("user.created", {"email": "x"})  # version 1: unchanged


def test_a_chain_runs_every_step_in_order() -> None:
    chain = {
        ("t", 1): lambda p: p | {"b": p["a"]},
        ("t", 2): lambda p: {k: v for k, v in p.items() if k != "a"} | {"c": 3},
    }
    assert upcast("t", {"a": 1}, chain) == {"b": 1, "c": 3}
    assert upcast("t", {"b": 1, SCHEMA_KEY: 2}, chain) == {"b": 1, "c": 3}
    assert upcast("t", {"c": 0, SCHEMA_KEY: 3}, chain) == {"c": 0}
    assert upcast("t", {"b": 1, SCHEMA_KEY: 2.0}, chain) == {"b": 1, "c": 3}  # via a Struct


@pytest.mark.parametrize("bad", [0, True, "2", 99, 1.5])
def test_an_unknown_or_newer_version_is_refused_not_misread(bad: object) -> None:
    with pytest.raises(domain.ValidationError):
        upcast("user.password.changed", {"password_hash": "h", SCHEMA_KEY: bad})


def test_events_stored_in_todays_plaintext_format_read_correctly_and_erase(tmp_path: Path) -> None:
    """A stream written before encryption and versions (clear JSON, no version key)."""
    codec = PayloadCodec(KeyStore(tmp_path / "keys.sqlite3", bytes(32)))
    user_id = str(uuid.uuid4())
    stored = [
        ("user.created", {"email": "old@example.com", "password_hash": "h", "role": "user"}),
        ("user.password.changed", {"password_hash": "h2"}),
        ("user.login.recorded", {"client_address": "10.1.2.3"}),
    ]
    records = [
        RecordedEvent(
            i + 1, str(uuid.uuid4()), user_id, "user", i + 1, t, T0, json.dumps(p).encode(), "", ""
        )
        for i, (t, p) in enumerate(stored)
    ]
    state = domain.fold(to_domain(r, codec) for r in records)
    assert state is not None and state.email == "old@example.com"
    changed = to_domain(records[1], codec)
    assert isinstance(changed, domain.PasswordChanged) and changed.kept_session_id == ""
    assert event_to_pb(records[2], codec).payload["client_address"] == "10.1.2.3"
    codec.erase(user_id, at="2026-01-02T00:00:00Z")
    state = domain.fold(to_domain(r, codec) for r in records)
    assert state is not None and state.email == ERASED
    assert event_to_pb(records[2], codec).payload["client_address"] == ERASED
