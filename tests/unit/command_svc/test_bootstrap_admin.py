"""bootstrap_admin: registers once, is idempotent, waits for the store."""

from __future__ import annotations

from typing import Any

import pytest

import domain
from command_svc.bootstrap_admin import bootstrap_admin
from command_svc.errors import StoreUnavailable
from command_svc.handlers import CommandHandler
from command_svc.settings import AdminAccount
from command_svc.store_client import Appended, Trace

from .fakes import FakeHasher, FakeStore

pytestmark = pytest.mark.unit

ADMIN = AdminAccount("root@example.com", "admin-password")


async def test_registers_the_admin_once() -> None:
    store = FakeStore()
    handler = CommandHandler(store=store, hasher=FakeHasher())
    uid = await bootstrap_admin(handler, ADMIN)
    assert uid is not None
    state, _ = await store.load(uid)
    assert state is not None
    assert (state.email, state.role) == ("root@example.com", domain.ROLE_ADMIN)
    assert await bootstrap_admin(handler, ADMIN) is None
    assert len(store.streams) == 1


class FlakyStore(FakeStore):
    failures: int = 2

    async def append(self, **kwargs: Any) -> Appended:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("starting")
        return await super().append(**kwargs)


async def test_retries_while_the_store_is_unavailable() -> None:
    store = FlakyStore()
    handler = CommandHandler(store=store, hasher=FakeHasher())
    uid = await bootstrap_admin(handler, ADMIN, first_pause=0.001)
    assert uid in store.streams
    assert store.failures == 0


async def test_other_errors_propagate() -> None:
    store = FakeStore()
    handler = CommandHandler(store=store, hasher=FakeHasher())
    await handler.register(email="x@example.com", password="password-1", trace=Trace("c", "d"))
    bad = AdminAccount("not-an-email", "admin-password")
    with pytest.raises(domain.ValidationError):
        await bootstrap_admin(handler, bad)
