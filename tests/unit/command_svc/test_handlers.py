"""CommandHandler against an in-memory store: the decide/append/retry loop."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import grpc
import pytest

import domain
from command_svc.errors import StoreUnavailable
from command_svc.handlers import CommandHandler
from command_svc.store_client import Trace
from service_kit.errors import ServiceError

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACE = Trace(correlation_id="corr-1", causation_id="cmd-1")
PASSWORD = "password-1"


def make(
    store: FakeStore | None = None, hasher: FakeHasher | None = None, attempts: int = 5
) -> tuple[CommandHandler, FakeStore, FakeHasher]:
    store = store or FakeStore()
    hasher = hasher or FakeHasher()
    handler = CommandHandler(
        store=store, hasher=hasher, max_attempts=attempts, clock=lambda: NOW, retry_pause=0
    )
    return handler, store, hasher


async def registered(handler: CommandHandler, email: str = "Ann@Example.com") -> str:
    return (await handler.register(email=email, password=PASSWORD, trace=TRACE)).user_id


async def test_register_appends_user_created_to_a_new_stream() -> None:
    handler, store, hasher = make()
    out = await handler.register(email=" Ann@Example.COM ", password=PASSWORD, trace=TRACE)
    assert uuid.UUID(out.user_id).version == 4
    assert (out.version, out.position) == (1, 1)
    assert out.state.email == "ann@example.com"
    assert out.state.role == domain.ROLE_USER
    [call] = store.appends
    assert call.expected_version == 0
    assert call.trace == TRACE
    [event] = call.events
    assert isinstance(event, domain.UserCreated)
    assert event.password_hash == f"hashed:{PASSWORD}"
    assert event.occurred_at == NOW
    assert uuid.UUID(call.event_ids[0]).version == 4
    assert call.event_ids[0] != out.user_id
    assert store.loads == 0  # a fresh id needs no load
    assert hasher.hashes == 1


async def test_register_admin_role() -> None:
    handler, _, _ = make()
    out = await handler.register(
        email="root@example.com", password=PASSWORD, trace=TRACE, role=domain.ROLE_ADMIN
    )
    assert out.state.role == domain.ROLE_ADMIN


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [("nope", PASSWORD, "email"), ("a@example.com", "short", "password")],
)
async def test_register_validates_before_hashing(email: str, password: str, field: str) -> None:
    handler, store, hasher = make()
    with pytest.raises(domain.ValidationError) as info:
        await handler.register(email=email, password=password, trace=TRACE)
    assert info.value.field == field
    assert hasher.hashes == 0
    assert not store.appends


async def test_register_taken_email_is_already_exists_without_the_holder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, store, _ = make()
    first = await registered(handler, "ann@example.com")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceError) as info:
        await registered(handler, "ANN@example.com")
    # The caller's answer, not the operator's news (the admin bootstrap meets
    # one on every restart); and an email is personal data, never logged.
    assert all(r.levelno < logging.INFO for r in caplog.records), caplog.records
    assert "ann@example.com" not in caplog.text.lower()
    assert info.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert info.value.message == "email: already registered"
    assert first not in info.value.message
    assert len(store.streams) == 1


async def test_change_password_verifies_old_and_stores_new_hash() -> None:
    handler, store, hasher = make()
    uid = await registered(handler)
    out = await handler.change_password(
        user_id=uid, old_password=PASSWORD, new_password="password-2", trace=TRACE
    )
    assert out.version == 2
    assert out.state.password_hash == "hashed:password-2"
    assert out.state.password_version == 2
    assert (hasher.verifies, hasher.hashes) == (1, 2)
    assert store.appends[-1].expected_version == 1


async def test_change_password_wrong_old_is_invalid_credentials_without_hashing() -> None:
    handler, store, hasher = make()
    uid = await registered(handler)
    with pytest.raises(domain.InvalidCredentials) as info:
        await handler.change_password(
            user_id=uid, old_password="wrong-pass", new_password="password-2", trace=TRACE
        )
    assert str(info.value) == "old_password: does not match"
    assert hasher.hashes == 1  # only the registration
    assert len(store.appends) == 1


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("", "password-2", "old_password"),
        (PASSWORD, "short", "new_password"),
        (PASSWORD, PASSWORD, "new_password"),
    ],
)
async def test_change_password_validates_before_loading(old: str, new: str, field: str) -> None:
    handler, store, hasher = make()
    uid = await registered(handler)
    loads = store.loads
    with pytest.raises(domain.ValidationError) as info:
        await handler.change_password(user_id=uid, old_password=old, new_password=new, trace=TRACE)
    assert info.value.field == field
    assert store.loads == loads
    assert hasher.verifies == 0


async def test_change_password_retry_verifies_and_hashes_once() -> None:
    handler, store, hasher = make()
    uid = await registered(handler)
    store.conflicts = 3
    out = await handler.change_password(
        user_id=uid, old_password=PASSWORD, new_password="password-2", trace=TRACE
    )
    assert out.version == 2
    assert len(store.appends) == 1 + 4
    assert (hasher.verifies, hasher.hashes) == (1, 2)


async def test_conflicts_are_retried_then_reported_as_aborted() -> None:
    handler, store, _ = make(attempts=3)
    uid = await registered(handler)
    store.conflicts = 3
    with pytest.raises(ServiceError) as info:
        await handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE)
    assert info.value.code == grpc.StatusCode.ABORTED
    assert uid in info.value.message
    assert "3 attempts" in info.value.message
    assert len(store.appends) == 1 + 3


async def test_retry_decides_against_the_reloaded_state() -> None:
    handler, store, _ = make()
    uid = await registered(handler)
    # Another writer appends between our load and our append.
    real_load = store.load
    interfered: list[bool] = []

    async def load_then_interfere(user_id: str) -> object:
        loaded = await real_load(user_id)
        if not interfered:
            interfered.append(True)
            other, _, _ = make(store)
            await other.record_login(user_id=uid, client_address="x", trace=TRACE)
        return loaded

    store.load = load_then_interfere  # type: ignore[method-assign,assignment]
    out = await handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE)
    assert out.version == 3
    versions = [call.expected_version for call in store.appends]
    assert versions == [0, 1, 1, 2]  # register, login, our stale try, our retry


async def test_change_email_normalises_and_moves_the_claim() -> None:
    handler, store, _ = make()
    uid = await registered(handler, "ann@example.com")
    out = await handler.change_email(user_id=uid, new_email=" NEW@Example.com", trace=TRACE)
    assert out.state.email == "new@example.com"
    assert store.claims == {"new@example.com": uid}


async def test_change_email_to_a_taken_one_names_new_email() -> None:
    handler, _, _ = make()
    await registered(handler, "b@example.com")
    uid = await registered(handler, "a@example.com")
    with pytest.raises(ServiceError) as info:
        await handler.change_email(user_id=uid, new_email="B@example.com", trace=TRACE)
    assert (info.value.code, info.value.message) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "new_email: already registered",
    )


async def test_change_email_to_the_same_is_a_validation_error() -> None:
    handler, _, _ = make()
    uid = await registered(handler, "a@example.com")
    with pytest.raises(domain.ValidationError) as info:
        await handler.change_email(user_id=uid, new_email="A@example.com", trace=TRACE)
    assert info.value.field == "new_email"


async def test_change_email_invalid_is_refused_before_loading() -> None:
    handler, store, _ = make()
    with pytest.raises(domain.ValidationError) as info:
        await handler.change_email(user_id=str(uuid.uuid4()), new_email="x", trace=TRACE)
    assert info.value.field == "new_email"
    assert store.loads == 0


async def test_unknown_user_is_user_not_found_naming_it() -> None:
    handler, _, hasher = make()
    uid = str(uuid.uuid4())
    for call in (
        handler.change_password(
            user_id=uid, old_password=PASSWORD, new_password="password-2", trace=TRACE
        ),
        handler.change_email(user_id=uid, new_email="b@example.com", trace=TRACE),
        handler.deactivate(user_id=uid, reason="", trace=TRACE),
        handler.record_login(user_id=uid, client_address="", trace=TRACE),
    ):
        with pytest.raises(domain.UserNotFound, match=uid):
            await call
    assert hasher.verifies == 0


async def test_deactivated_user_accepts_nothing_and_costs_no_bcrypt() -> None:
    handler, _, hasher = make()
    uid = await registered(handler)
    out = await handler.deactivate(user_id=uid, reason="left", trace=TRACE)
    assert out.state.status is domain.UserStatus.DEACTIVATED
    assert out.state.deactivation_reason == "left"
    with pytest.raises(domain.UserDeactivatedError):
        await handler.change_password(
            user_id=uid, old_password=PASSWORD, new_password="password-2", trace=TRACE
        )
    assert hasher.verifies == 0
    with pytest.raises(domain.UserDeactivatedError):
        await handler.deactivate(user_id=uid, reason="", trace=TRACE)


async def test_deactivate_reason_too_long_names_reason() -> None:
    handler, _, _ = make()
    uid = await registered(handler)
    with pytest.raises(domain.ValidationError) as info:
        await handler.deactivate(user_id=uid, reason="x" * 501, trace=TRACE)
    assert info.value.field == "reason"


async def test_record_login_truncates_the_client_address() -> None:
    handler, store, _ = make()
    uid = await registered(handler)
    out = await handler.record_login(user_id=uid, client_address="a" * 1000, trace=TRACE)
    assert (out.version, out.state.login_count) == (2, 1)
    [event] = store.appends[-1].events
    assert isinstance(event, domain.LoginRecorded)
    assert len(event.client_address) == domain.MAX_CLIENT_ADDRESS_LENGTH


async def test_store_unavailable_propagates() -> None:
    handler, store, _ = make()
    uid = await registered(handler)
    store.unavailable = True
    with pytest.raises(StoreUnavailable):
        await handler.record_login(user_id=uid, client_address="", trace=TRACE)


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        make(attempts=0)
