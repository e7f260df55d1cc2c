"""bootstrap_admin: registers once, is idempotent, waits for the store, and says
whether the configured credentials still sign in."""

from __future__ import annotations

from typing import Any

import pytest

import domain
from command_svc.bootstrap_admin import AdminStatus, bootstrap_admin
from command_svc.errors import StoreUnavailable
from command_svc.handlers import CommandHandler
from command_svc.settings import AdminAccount
from command_svc.store_client import Appended, Trace

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

ADMIN = AdminAccount("root@example.com", "admin-password")


TRACE = Trace("c", "d")


async def test_registers_the_admin_once() -> None:
    store, hasher = FakeStore(), FakeHasher()
    handler = CommandHandler(store=store, hasher=hasher)
    first = await bootstrap_admin(handler, ADMIN, hasher)
    assert first.status is AdminStatus.CREATED and first.usable
    state, _ = await store.load(first.user_id)
    assert state is not None
    assert (state.email, state.role) == ("root@example.com", domain.ROLE_ADMIN)
    again = await bootstrap_admin(handler, ADMIN, hasher)
    assert (again.status, again.user_id, again.usable) == (AdminStatus.READY, first.user_id, True)
    assert len(store.streams) == 1
    assert "admin-password" not in again.describe()


async def test_says_when_the_admin_is_unusable() -> None:
    store, hasher = FakeStore(), FakeHasher()
    handler = CommandHandler(store=store, hasher=hasher)
    admin_id = (await bootstrap_admin(handler, ADMIN, hasher)).user_id
    await handler.reset_password(
        user_id=admin_id, new_password="another-password", actor=admin_id, trace=TRACE
    )
    changed = await bootstrap_admin(handler, ADMIN, hasher)
    assert changed.status is AdminStatus.PASSWORD_CHANGED and not changed.usable
    assert "ADMIN_PASSWORD does not sign in as admin" in changed.describe()
    other = await handler.register(
        email="other@example.com", password="password-1", trace=TRACE, role=domain.ROLE_ADMIN
    )
    await handler.deactivate(user_id=admin_id, reason="", trace=TRACE)
    gone = await bootstrap_admin(handler, ADMIN, hasher)
    assert gone.status is AdminStatus.DEACTIVATED and "deactivated" in gone.describe()
    assert other.user_id != admin_id


async def test_an_address_held_by_a_user_is_not_an_admin() -> None:
    store, hasher = FakeStore(), FakeHasher()
    handler = CommandHandler(store=store, hasher=hasher)
    await handler.register(email=ADMIN.email, password="password-1", trace=TRACE)
    result = await bootstrap_admin(handler, ADMIN, hasher)
    assert (result.status, result.usable) == (AdminStatus.NOT_ADMIN, False)


class FlakyStore(FakeStore):
    failures: int = 2

    async def append(self, **kwargs: Any) -> Appended:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("starting")
        return await super().append(**kwargs)


async def test_retries_while_the_store_is_unavailable() -> None:
    store, hasher = FlakyStore(), FakeHasher()
    handler = CommandHandler(store=store, hasher=hasher)
    result = await bootstrap_admin(handler, ADMIN, hasher, first_pause=0.001)
    assert result.user_id in store.streams
    assert store.failures == 0


async def test_other_errors_propagate() -> None:
    store, hasher = FakeStore(), FakeHasher()
    handler = CommandHandler(store=store, hasher=hasher)
    await handler.register(email="x@example.com", password="password-1", trace=TRACE)
    bad = AdminAccount("not-an-email", "admin-password")
    with pytest.raises(domain.ValidationError):
        await bootstrap_admin(handler, bad, hasher)
