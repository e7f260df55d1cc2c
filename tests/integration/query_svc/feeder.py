"""Writing users' events straight into a real store, as command_svc would.

Decides with the shared domain, appends with the exact expected version and
the email claims, and remembers each user's state. It lets the query tests
produce many events fast (no bcrypt per event) and control every step.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cqrs.eventstore.v1 import event_store_pb2 as es
from cqrs.eventstore.v1 import event_store_pb2_grpc as es_grpc
from google.protobuf import empty_pb2, struct_pb2

import domain
from service_kit.timeconv import utcnow

MetadataFn = Callable[[], list[tuple[str, str]]]


def _struct(values: dict[str, str | int]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def _proposed(event: domain.DomainEvent) -> es.ProposedEvent:
    claims = domain.claims_for(event)
    return es.ProposedEvent(
        event_id=str(uuid.uuid4()),
        event_type=event.EVENT_TYPE,
        payload=_struct(domain.event_to_payload(event)),
        claims=[es.Claim(namespace=domain.EMAIL_CLAIM_NAMESPACE, value=v) for v in claims.take],
        releases=[
            es.Claim(namespace=domain.EMAIL_CLAIM_NAMESPACE, value=v) for v in claims.release
        ],
    )


@dataclass
class Feeder:
    """Appends decided events for users it tracks; ``head`` is the last position."""

    stub: es_grpc.EventStoreServiceAsyncStub
    metadata: MetadataFn
    states: dict[str, domain.UserState] = field(default_factory=dict)
    head: int = 0

    async def run(self, user_id: str, commands: Sequence[domain.Command]) -> int:
        """Decides ``commands`` in order on the user's state, appends them; last position."""
        state = self.states.get(user_id)
        events: list[domain.DomainEvent] = []
        now = utcnow()
        for command in commands:
            decided = domain.decide(state, command, now=now)
            state = domain.fold(decided, state)
            events.extend(decided)
        old = self.states.get(user_id)
        request = es.AppendRequest(
            aggregate_id=user_id,
            aggregate_type="user",
            events=[_proposed(e) for e in events],
        )
        if old is None:
            request.no_stream.CopyFrom(empty_pb2.Empty())
        else:
            request.exact = old.version
        response = await self.stub.Append(request, metadata=self.metadata(), timeout=10)
        assert state is not None
        self.states[user_id] = state
        position = int(response.positions[-1])
        self.head = max(self.head, position)
        return position

    async def register(
        self, email: str, *, password_hash: str, role: str = domain.ROLE_USER
    ) -> tuple[str, int]:
        """A new user; returns (id, position of user.created)."""
        user_id = str(uuid.uuid4())
        command = domain.RegisterUser(
            user_id=user_id,
            email=email,
            password="irrelevant-here",
            password_hash=password_hash,
            role=role,
        )
        return user_id, await self.run(user_id, [command])

    async def populate(
        self, *, users: int, logins_per_user: int, password_hash: str, concurrency: int = 16
    ) -> None:
        """Many users, each: created, password and email changed, logins, some deactivated."""
        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with semaphore:
                user_id = str(uuid.uuid4())
                commands: list[domain.Command] = [
                    domain.RegisterUser(
                        user_id=user_id,
                        email=f"bulk{i}-{user_id[:8]}@example.com",
                        password="irrelevant-here",
                        password_hash=password_hash,
                    ),
                    domain.ChangePassword(
                        old_password="irrelevant-here",
                        new_password="irrelevant-there",
                        old_password_matches=True,
                        new_password_hash=password_hash,
                    ),
                    domain.ChangeEmail(f"moved{i}-{user_id[:8]}@example.com"),
                    *[
                        domain.RecordLogin(f"10.0.{i % 250}.{n % 250}")
                        for n in range(logins_per_user)
                    ],
                ]
                if i % 10 == 0:
                    commands.append(domain.Deactivate("bulk"))
                for start in range(0, len(commands), 100):
                    await self.run(user_id, commands[start : start + 100])

        await asyncio.gather(*(one(i) for i in range(users)))
