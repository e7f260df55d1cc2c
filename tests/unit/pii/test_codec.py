"""The generic, annotation-driven redaction and encryption (pii.codec).

Every case is generated from the contract's descriptors: for each event type
and each field the annotations mark, so a field newly marked secret or
personal is covered here without a new test.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import domain
from pii.annotations import EVENT_MESSAGES, EVENT_PRIVACY, STATE_PRIVACY, privacy_of
from pii.codec import ERASED, PREFIX, REDACTED, PayloadCodec, is_sealed, redact_event
from pii.keystore import KeyStore, WrongMasterKey

pytestmark = pytest.mark.unit

MASTER = bytes(range(32))
EVENT_TYPES = sorted(EVENT_PRIVACY)
texts = st.text(min_size=1, max_size=40).filter(lambda s: s != ERASED)


@pytest.fixture
def codec(tmp_path: Path) -> PayloadCodec:
    return PayloadCodec(KeyStore(tmp_path / "keys.sqlite3", MASTER))


def _payload(event_type: str, value: str) -> dict[str, object]:
    """Every field of the event's message set to ``value``."""
    return {f.name: value for f in EVENT_MESSAGES[event_type].fields}


def test_the_contract_marks_the_known_personal_and_secret_fields() -> None:
    personal = {(t, f) for t, p in EVENT_PRIVACY.items() for f in p.personal}
    secret = {(t, f) for t, p in EVENT_PRIVACY.items() for f in p.secret}
    assert ("user.created", "email") in personal
    assert ("user.email.changed", "old_email") in personal
    assert ("user.email.changed", "new_email") in personal
    assert ("user.login.recorded", "client_address") in personal
    assert ("user.created", "password_hash") in secret
    assert ("user.password_reset.requested", "token_hash") in secret
    assert not personal & secret
    assert STATE_PRIVACY.personal == {"email": "user_id"}


def test_every_domain_event_has_exactly_its_contract_message_fields() -> None:
    """domain.events mirrors cqrs/events/v1 field for field, type for type."""
    assert set(EVENT_MESSAGES) == set(domain.EVENT_TYPES)
    for event_type, cls in domain.EVENT_CLASSES.items():
        fields = {f.name for f in dataclasses.fields(cls)} - set(domain.ENVELOPE_FIELDS)
        assert fields == {f.name for f in EVENT_MESSAGES[event_type].fields}, event_type


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=texts)
def test_sealing_hides_every_personal_field_and_opening_restores_it(
    codec: PayloadCodec, event_type: str, value: str
) -> None:
    privacy = EVENT_PRIVACY[event_type]
    subject = str(uuid.uuid4())
    payload = _payload(event_type, value)
    sealed = codec.seal_event(event_type, payload, subject)
    for name in payload:
        if name in privacy.personal:
            assert is_sealed(sealed[name]), (event_type, name)
            assert sealed[name] != PREFIX + value
        else:
            assert sealed[name] == value  # everything else stays queryable in clear
    opened = codec.open_event(event_type, sealed, subject)
    for name in payload:
        expected = REDACTED if name in privacy.secret else value
        assert opened[name] == expected, (event_type, name)
    assert codec.open_event(event_type, sealed, subject, reveal_secrets=True) == payload
    assert payload == _payload(event_type, value)  # the input is not modified


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_after_erasure_every_personal_field_reads_erased(
    codec: PayloadCodec, event_type: str
) -> None:
    privacy = EVENT_PRIVACY[event_type]
    subject, other = str(uuid.uuid4()), str(uuid.uuid4())
    payload = _payload(event_type, "someone@example.com")
    sealed = codec.seal_event(event_type, payload, subject)
    kept = codec.seal_event(event_type, payload, other)
    codec.erase(subject, at="2026-01-01T00:00:00Z")
    opened = codec.open_event(event_type, sealed, subject, reveal_secrets=True)
    for name in payload:
        expected = ERASED if name in privacy.personal else payload[name]
        assert opened[name] == expected, (event_type, name)
    # A value stored in clear before encryption existed reads erased too.
    legacy = codec.open_event(event_type, payload, subject, reveal_secrets=True)
    assert all(legacy[n] == ERASED for n in privacy.personal)
    # Another subject is untouched; an erased subject never gets a key again.
    assert codec.open_event(event_type, kept, other, reveal_secrets=True) == payload
    late = codec.seal_event(event_type, payload, subject)
    assert all(late[n] == ERASED for n in privacy.personal)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_redaction_hides_exactly_the_secret_fields(event_type: str) -> None:
    payload = _payload(event_type, "x")
    redacted = redact_event(event_type, payload)
    assert {n for n, v in redacted.items() if v == REDACTED} == EVENT_PRIVACY[event_type].secret


def test_a_sealed_value_cannot_be_moved_to_another_subject(codec: PayloadCodec) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    codec.seal_event("user.created", {"email": "x@example.com"}, second)  # gives second a key
    sealed = codec.seal_event("user.created", {"email": "a@example.com"}, first)
    with pytest.raises(ValueError, match=r"UserCreated\.email"):
        codec.open_event("user.created", sealed, second)


def test_state_snapshots_seal_the_email(codec: PayloadCodec) -> None:
    state = {"user_id": str(uuid.uuid4()), "email": "a@example.com", "role": "user"}
    sealed = codec.seal_state(state)
    assert is_sealed(sealed["email"]) and sealed["role"] == "user"
    assert codec.open_state(sealed) == state


def test_privacy_of_a_message_without_annotations_is_plain() -> None:
    assert privacy_of(EVENT_MESSAGES["user.deactivated"]).is_plain


def test_the_key_store_refuses_another_master_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    KeyStore(path, MASTER).close()
    with pytest.raises(WrongMasterKey, match="PII_MASTER_KEY does not open"):
        KeyStore(path, bytes(32))


def test_erasure_overwrites_the_wrapped_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = KeyStore(path, MASTER)
    subject = str(uuid.uuid4())
    assert keys.cipher(subject, create=True) is not None
    wrapped = _wrapped(path, subject)
    keys.erase(subject, at="2026-01-01T00:00:00Z")
    assert keys.cipher(subject, create=True) is None
    keys.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert wrapped not in raw


def _wrapped(path: Path, subject: str) -> bytes:
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT wrapped FROM pii_keys WHERE subject = ?", (subject,)).fetchone()
    finally:
        db.close()
    return bytes(row[0])


def test_claims_are_keyed_hashes(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.sqlite3", MASTER)
    digest = keys.claim_digest("user.email", "a@example.com")
    assert digest == keys.claim_digest("user.email", "a@example.com")
    assert "example" not in digest and len(digest) == 64
    other = KeyStore(tmp_path / "other.sqlite3", bytes(32))
    assert other.claim_digest("user.email", "a@example.com") != digest


def test_keys_created_in_bulk_commit_together_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite3"
    keys = KeyStore(path, MASTER)
    with pytest.raises(RuntimeError), keys.bulk():
        keys.cipher("lost", create=True)
        raise RuntimeError("the copy failed midway")
    with keys.bulk():
        kept = keys.cipher("kept", create=True)
        assert kept is not None
    keys.close()
    again = KeyStore(path, MASTER)  # another instance: what the file holds
    assert again.cipher("lost", create=False) is None
    reopened = again.cipher("kept", create=False)
    assert reopened is not None
    nonce = bytes(12)
    assert reopened.decrypt(nonce, kept.encrypt(nonce, b"x", b"kept"), b"kept") == b"x"
