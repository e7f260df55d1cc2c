"""command_svc's budgets on PostgreSQL: shared by two instances, kept across a restart.

Two real command_svc servers on one store and one PostgreSQL schema
(``COMMAND_LIMITS_BACKEND=postgres``): a burst of wrong ``old_password``
guesses spread over both evaluates one budget, and registrations from one
address through both add up; an instance started afresh still refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from cqrs.command.v1 import command_pb2 as pb
from cqrs.command.v1 import command_pb2_grpc as command_grpc
from sqlalchemy import text

from command_svc import app as command_app
from command_svc.abuse_limits import AbuseLimits
from command_svc.limits_database import LimitsDatabase
from service_kit.auth import ROLE_USER
from service_kit.postgres_settings import PostgresSettings
from tests.integration.store_svc.test_auth_grpc import code_of

from .conftest import Stack, bearer, command_settings

pytestmark = pytest.mark.integration

LIMITS = AbuseLimits(register_per_address=3, password_checks=5)
PASSWORD = "password-1"


@pytest.fixture
async def shared_db() -> AsyncIterator[PostgresSettings]:
    """A fresh PostgreSQL schema for this test's budgets, dropped afterwards."""
    if not os.environ.get("POSTGRES_QUERY_HOST"):
        pytest.skip('POSTGRES_QUERY_HOST is not set (eval "$(scripts/infra.sh env)")')
    settings = replace(
        PostgresSettings.from_env(os.environ), schema=f"climits_{uuid.uuid4().hex[:10]}"
    )
    yield settings
    db = LimitsDatabase(settings, timeout=5)
    try:
        async with db.write() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE'))
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def instance(
    stack: Stack, db: PostgresSettings
) -> AsyncIterator[command_grpc.CommandServiceAsyncStub]:
    """A command_svc on the stack's store, counting its budgets in ``db``."""
    settings = command_settings(stack.store.server.port, limits=LIMITS, limits_database=db)
    service = await command_app.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.server.port}") as channel:
            yield command_grpc.CommandServiceStub(channel)
    finally:
        await service.stop(grace=1)


def _register(stub: command_grpc.CommandServiceAsyncStub) -> object:
    email = f"shared-{uuid.uuid4().hex[:8]}@example.com"
    return stub.Register(pb.RegisterRequest(email=email, password=PASSWORD), timeout=10)


def _change(stub: command_grpc.CommandServiceAsyncStub, user_id: str, old_password: str) -> object:
    request = pb.ChangePasswordRequest(
        id=user_id, old_password=old_password, new_password="password-2"
    )
    return stub.ChangePassword(request, metadata=bearer(user_id, ROLE_USER), timeout=10)


async def test_two_instances_share_one_budget_and_a_restart_keeps_it(
    stack: Stack, shared_db: PostgresSettings
) -> None:
    async with instance(stack, shared_db) as first, instance(stack, shared_db) as second:
        # Registrations from one address (127.0.0.1), through both instances.
        registered = [await code_of(_register(s)) for s in (first, second, first)]
        assert registered == [grpc.StatusCode.OK] * 3
        assert await code_of(_register(second)) == grpc.StatusCode.RESOURCE_EXHAUSTED

        user = await stack.commands.Register(  # a service: not counted
            pb.RegisterRequest(
                email=f"guessed-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD
            ),
            metadata=stack.service_md(),
            timeout=10,
        )
        # Ten simultaneous wrong guesses, half through each: one budget of five.
        codes = await asyncio.gather(
            *(code_of(_change(s, user.id, "wrong-guess")) for s in [first, second] * 5)
        )
        assert Counter(codes) == {
            grpc.StatusCode.INVALID_ARGUMENT: 5,
            grpc.StatusCode.RESOURCE_EXHAUSTED: 5,
        }, codes
    # Both stopped; a fresh instance reads the same rows.
    async with instance(stack, shared_db) as restarted:
        assert await code_of(_change(restarted, user.id, PASSWORD)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert await code_of(_register(restarted)) == grpc.StatusCode.RESOURCE_EXHAUSTED
