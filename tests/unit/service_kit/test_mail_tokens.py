"""service_kit.mail_tokens: tokens derived from events, never stored."""

from __future__ import annotations

import uuid

import pytest

from service_kit.mail_tokens import MailTokens, parse_token, token_hash

pytestmark = pytest.mark.unit

USER = str(uuid.uuid4())


def test_reset_tokens_name_the_user_and_match_only_their_hash() -> None:
    tokens = MailTokens(b"k" * 32)
    nonce = tokens.new_nonce()
    token = tokens.reset_token(USER, nonce)
    parsed = parse_token(token)
    assert parsed is not None and parsed.user_id == USER
    stored = token_hash(tokens.reset_secret(nonce))
    assert MailTokens.reset_matches(parsed.secret, stored)
    assert not MailTokens.reset_matches(parsed.secret, token_hash(b"other"))
    assert not MailTokens.reset_matches(parsed.secret, "")
    # Another key derives another token from the same event.
    assert MailTokens(b"j" * 32).reset_token(USER, nonce) != token
    assert tokens.new_nonce() != nonce


def test_verification_tokens_depend_on_address_and_version() -> None:
    tokens = MailTokens(b"k" * 32)
    token = tokens.verification_token(USER, "a@example.com", 1)
    parsed = parse_token(token)
    assert parsed is not None
    assert tokens.verification_matches(
        parsed.secret, user_id=USER, email="a@example.com", email_version=1
    )
    assert not tokens.verification_matches(
        parsed.secret, user_id=USER, email="a@example.com", email_version=3
    )
    assert not tokens.verification_matches(
        parsed.secret, user_id=USER, email="b@example.com", email_version=1
    )


@pytest.mark.parametrize("text", ["", "!!!", "abc", "A" * 200, "A" * 63])
def test_malformed_tokens_parse_to_none(text: str) -> None:
    assert parse_token(text) is None


def test_the_key_is_never_shown_and_must_be_long() -> None:
    assert "k" * 32 not in repr(MailTokens(b"k" * 32))
    with pytest.raises(ValueError):
        MailTokens(b"short")
