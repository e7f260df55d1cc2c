"""Registering benchmark users through command_svc, as a client would.

Each user gets a unique email and :data:`bench.workload.PASSWORD`, and the
harness mints the token that user's Login would have returned (same secret,
same claims), so owner-only calls are checked exactly as in production.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import grpc
from cqrs.command.v1 import command_pb2 as cpb
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc
from cqrs.query.v1 import query_pb2 as qpb
from cqrs.query.v1 import query_pb2_grpc as qpb_grpc

from bench.tokens import Metadata, Tokens
from bench.workload import PASSWORD

__all__ = ["BenchUser", "register_users", "wait_projected"]

_CALL_TIMEOUT = 60.0
_PARALLEL = 8  # registrations in flight (each costs one bcrypt hash)


@dataclass(slots=True)
class BenchUser:
    user_id: str
    email: str
    metadata: Metadata
    version: int
    position: int
    email_changes: int = 0

    def next_email(self) -> str:
        """A fresh address for this user's next ChangeEmail (never its current one)."""
        self.email_changes += 1
        local, _, host = self.email.partition("@")
        return f"{local}-{self.email_changes}@{host}"


async def register_users(
    stub: cpb_grpc.CommandServiceAsyncStub, tokens: Tokens, count: int
) -> list[BenchUser]:
    """Registers ``count`` users (at most _PARALLEL at a time); in request order."""
    gate = asyncio.Semaphore(_PARALLEL)
    run = uuid.uuid4().hex[:8]

    async def one(n: int) -> BenchUser:
        email = f"user{n}-{run}@bench.example.com"
        async with gate:
            reply = await stub.Register(
                cpb.RegisterRequest(email=email, password=PASSWORD), timeout=_CALL_TIMEOUT
            )
        return BenchUser(
            reply.id, email, tokens.user(reply.id, email), reply.version, reply.position
        )

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def wait_projected(
    stub: qpb_grpc.QueryServiceAsyncStub, users: list[BenchUser], *, within: float = 120.0
) -> None:
    """Until the read model has applied every registration (bounded)."""
    last = max(users, key=lambda u: u.position)
    deadline = time.monotonic() + within
    while True:
        try:
            await stub.GetUser(
                qpb.GetUserRequest(id=last.user_id, min_position=last.position),
                metadata=last.metadata,
                timeout=_CALL_TIMEOUT,
            )
            return
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
