"""CommandHandler's account lifecycle: the last-admin rule (race included),
admin reset, reactivation, mailed reset and verification tokens, revocation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import domain
from command_svc.handlers import CommandHandler
from command_svc.store_client import Appended, Created, Loaded, Trace
from service_kit.mail_tokens import MailTokens, TokenLifetimes

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

TRACE = Trace("corr", "cause")
KEY = b"k" * 32
PASSWORD = "password-1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make(store: FakeStore | None = None) -> tuple[CommandHandler, FakeStore, Clock]:
    store = store or FakeStore()
    clock = Clock()
    handler = CommandHandler(
        store=store,
        hasher=FakeHasher(),
        clock=clock,
        retry_pause=0,
        mail_tokens=MailTokens(KEY),
        lifetimes=TokenLifetimes(
            password_reset=timedelta(minutes=30), email_verification=timedelta(days=2)
        ),
    )
    return handler, store, clock


async def admin(handler: CommandHandler, email: str) -> str:
    out = await handler.register(
        email=email, password=PASSWORD, trace=TRACE, role=domain.ROLE_ADMIN
    )
    return out.user_id


# -- the last active admin --------------------------------------------------------


async def test_the_only_admin_cannot_be_deactivated() -> None:
    handler, _, _ = make()
    only = await admin(handler, "only@example.com")
    with pytest.raises(domain.LastActiveAdmin):
        await handler.deactivate(user_id=only, reason="", trace=TRACE)


async def test_every_deactivation_takes_the_next_sequence_claim() -> None:
    handler, store, _ = make()
    first = await admin(handler, "a@example.com")
    second = await admin(handler, "b@example.com")
    user = (await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)).user_id
    await handler.deactivate(user_id=user, reason="", trace=TRACE)
    await handler.deactivate(user_id=first, reason="", trace=TRACE)
    assert set(store.other_claims) == {
        (domain.DEACTIVATION_CLAIM_NAMESPACE, "0"),
        (domain.DEACTIVATION_CLAIM_NAMESPACE, "1"),
    }
    with pytest.raises(domain.LastActiveAdmin):
        await handler.deactivate(user_id=second, reason="", trace=TRACE)
    # Reactivating one makes the other deactivatable again.
    await handler.activate(user_id=first, reason="back", trace=TRACE)
    await handler.deactivate(user_id=second, reason="", trace=TRACE)


class InterleavingStore(FakeStore):
    """Yields to the event loop at every read, so concurrent commands interleave."""

    async def load(self, user_id: str) -> Loaded:
        await asyncio.sleep(0)
        return await super().load(user_id)

    async def count_events(self, event_type: str) -> int:
        await asyncio.sleep(0)
        return await super().count_events(event_type)

    async def created_after(self, position: int, limit: int) -> list[Created]:
        await asyncio.sleep(0)
        return await super().created_after(position, limit)

    async def append(self, **kwargs: Any) -> Appended:
        await asyncio.sleep(0)
        return await super().append(**kwargs)


async def test_two_admins_deactivating_each_other_at_once_leave_one() -> None:
    handler, store, _ = make(InterleavingStore())
    a = await admin(handler, "a@example.com")
    b = await admin(handler, "b@example.com")
    outcomes = await asyncio.gather(
        handler.deactivate(user_id=a, reason="", trace=TRACE),
        handler.deactivate(user_id=b, reason="", trace=TRACE),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, domain.LastActiveAdmin)]
    assert len(refused) == 1, outcomes
    states = [(await store.load(uid)).state for uid in (a, b)]
    assert sum(1 for s in states if s is not None and s.is_active) == 1


# -- passwords --------------------------------------------------------------------


async def test_an_admin_resets_a_password_without_the_old_one() -> None:
    handler, store, _ = make()
    boss = await admin(handler, "boss@example.com")
    user = (await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)).user_id
    out = await handler.reset_password(
        user_id=user, new_password="brand-new-pass", actor=boss, trace=TRACE
    )
    event = store.streams[user][-1]
    assert isinstance(event, domain.PasswordReset) and event.actor == boss
    assert out.state.password_hash == "hashed:brand-new-pass"
    assert out.state.credential_version == out.version


async def test_a_mailed_reset_token_works_once_and_expires() -> None:
    handler, store, clock = make()
    tokens = MailTokens(KEY)
    user = (await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)).user_id
    await handler.issue_password_reset(user_id=user, trace=TRACE)
    requested = store.streams[user][-1]
    assert isinstance(requested, domain.PasswordResetRequested)
    assert requested.expires_at == clock.now + timedelta(minutes=30)
    token = tokens.reset_token(user, requested.token_nonce)
    assert token not in repr(store.streams)
    out = await handler.confirm_password_reset(token=token, new_password="new-pass-1", trace=TRACE)
    assert out.state.password_hash == "hashed:new-pass-1"
    with pytest.raises(domain.InvalidToken):
        await handler.confirm_password_reset(token=token, new_password="new-pass-2", trace=TRACE)
    await handler.issue_password_reset(user_id=user, trace=TRACE)
    later = store.streams[user][-1]
    assert isinstance(later, domain.PasswordResetRequested)
    clock.now += timedelta(minutes=31)
    with pytest.raises(domain.InvalidToken):
        await handler.confirm_password_reset(
            token=tokens.reset_token(user, later.token_nonce),
            new_password="new-pass-3",
            trace=TRACE,
        )


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "A" * 64, MailTokens(b"x" * 32).reset_token(str(uuid.uuid4()), "n")],
)
async def test_any_bad_reset_token_is_the_same_refusal(token: str) -> None:
    handler, _, _ = make()
    with pytest.raises(domain.InvalidToken, match=r"^token: invalid, expired or already used$"):
        await handler.confirm_password_reset(token=token, new_password="new-pass-1", trace=TRACE)


async def test_a_wrong_reset_token_costs_no_bcrypt() -> None:
    hasher = FakeHasher()
    store = FakeStore()
    handler = CommandHandler(store=store, hasher=hasher, mail_tokens=MailTokens(KEY))
    user = (await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)).user_id
    await handler.issue_password_reset(user_id=user, trace=TRACE)
    before = hasher.hashes
    wrong = MailTokens(b"y" * 32).reset_token(user, "nonce")
    with pytest.raises(domain.InvalidToken):
        await handler.confirm_password_reset(token=wrong, new_password="new-pass-1", trace=TRACE)
    assert hasher.hashes == before


# -- email verification -----------------------------------------------------------


async def test_verification_tokens_follow_the_address() -> None:
    handler, _, clock = make()
    tokens = MailTokens(KEY)
    out = await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)
    first = tokens.verification_token(out.user_id, "u@example.com", 1)
    await handler.change_email(user_id=out.user_id, new_email="v@example.com", trace=TRACE)
    with pytest.raises(domain.InvalidToken):  # the address it was for is gone
        await handler.confirm_email_verification(token=first, trace=TRACE)
    second = tokens.verification_token(out.user_id, "v@example.com", 2)
    done = await handler.confirm_email_verification(token=second, trace=TRACE)
    assert done.state.email_verified and done.state.email == "v@example.com"
    with pytest.raises(domain.InvalidToken):
        await handler.confirm_email_verification(token=second, trace=TRACE)
    await handler.change_email(user_id=out.user_id, new_email="w@example.com", trace=TRACE)
    clock.now += timedelta(days=3)
    with pytest.raises(domain.InvalidToken):
        await handler.confirm_email_verification(
            token=tokens.verification_token(out.user_id, "w@example.com", 4), trace=TRACE
        )


# -- sessions ---------------------------------------------------------------------


async def test_revoking_one_session_or_all() -> None:
    handler, store, _ = make()
    user = (await handler.register(email="u@example.com", password=PASSWORD, trace=TRACE)).user_id
    await handler.revoke_sessions(
        user_id=user, session_id="s1", every=False, reason="", trace=TRACE
    )
    one = store.streams[user][-1]
    assert isinstance(one, domain.SessionRevoked) and (one.session_id, one.reason) == (
        "s1",
        "logout",
    )
    out = await handler.revoke_sessions(
        user_id=user, session_id="", every=True, reason="", trace=TRACE
    )
    assert isinstance(store.streams[user][-1], domain.SessionsRevoked)
    assert out.state.credential_version == out.version
