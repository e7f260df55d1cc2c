"""The mailer's mails, built from events, and the request limiter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cqrs.eventstore.v1 import event_store_pb2 as pb

from query_svc.mailer import compose
from query_svc.settings import MailSettings
from service_kit.mail_tokens import MailTokens, parse_token, token_hash
from service_kit.request_limits import MemoryRequestLimiter
from service_kit.timeconv import to_timestamp

pytestmark = pytest.mark.unit

KEY = MailTokens(b"m" * 32)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
USER = str(uuid.uuid4())


def event(event_type: str, version: int, at: datetime = T0) -> pb.Event:
    return pb.Event(
        event_id=str(uuid.uuid4()),
        aggregate_id=USER,
        event_type=event_type,
        version=version,
        timestamp=to_timestamp(at),
        position=7,
    )


def test_a_registration_mails_a_verification_token_for_its_address() -> None:
    created = event("user.created", 1)
    mail = compose(created, {"email": "a@example.com"}, tokens=KEY, settings=MailSettings(), now=T0)
    assert mail is not None
    assert (mail.to, mail.subject) == ("a@example.com", "Confirm your email address")
    assert mail.message_id == f"<{created.event_id}.verify@cqrs-users>"
    token = KEY.verification_token(USER, "a@example.com", 1)
    assert token in mail.text
    assert "http://127.0.0.1:8088/verify-email/confirm" in mail.text


def test_an_email_change_mails_the_new_address() -> None:
    changed = event("user.email.changed", 4)
    payload = {"old_email": "a@example.com", "new_email": "b@example.com"}
    mail = compose(changed, payload, tokens=KEY, settings=MailSettings(), now=T0)
    assert mail is not None and mail.to == "b@example.com"
    assert KEY.verification_token(USER, "b@example.com", 4) in mail.text


def test_a_reset_request_mails_the_token_whose_hash_it_stored() -> None:
    nonce = KEY.new_nonce()
    payload = {
        "email": "a@example.com",
        "token_nonce": nonce,
        "token_hash": token_hash(KEY.reset_secret(nonce)),
        "expires_at": "2030-01-01T00:30:00Z",
    }
    mail = compose(
        event("user.password_reset.requested", 3),
        payload,
        tokens=KEY,
        settings=MailSettings(),
        now=T0,
    )
    assert mail is not None and mail.subject == "Reset your password"
    token = KEY.reset_token(USER, nonce)
    assert token in mail.text
    parsed = parse_token(token)
    assert parsed is not None and MailTokens.reset_matches(parsed.secret, payload["token_hash"])
    assert nonce not in mail.text


def test_expired_tokens_and_other_events_are_not_mailed() -> None:
    late = T0 + timedelta(hours=1)
    payload = {
        "email": "a@example.com",
        "token_nonce": "n",
        "token_hash": "h",
        "expires_at": "2030-01-01T00:30:00Z",
    }
    settings = MailSettings()
    assert (
        compose(
            event("user.password_reset.requested", 3),
            payload,
            tokens=KEY,
            settings=settings,
            now=late,
        )
        is None
    )
    old = T0 - timedelta(days=3)
    assert (
        compose(
            event("user.created", 1, at=old),
            {"email": "a@example.com"},
            tokens=KEY,
            settings=settings,
            now=T0,
        )
        is None
    )
    assert (
        compose(event("user.login.recorded", 2), {}, tokens=KEY, settings=settings, now=T0) is None
    )


async def test_the_request_limiter_counts_per_key_within_its_window() -> None:
    now = [0.0]
    limiter = MemoryRequestLimiter(limit=2, window=60, clock=lambda: now[0])
    assert [await limiter.acquire("a") for _ in range(2)] == [0, 0]
    wait = await limiter.acquire("a")
    assert 0 < wait <= 60
    assert await limiter.acquire("b") == 0  # other keys have their own budget
    now[0] = 61.0
    assert await limiter.acquire("a") == 0
