"""The events the load generator writes: real domain events, in their wire form.

Every event is produced by the shared domain (``decide``/``evolve``), so the
store and the projector see exactly what command_svc would send: the same
payload fields and sizes, and the email claims each event takes or releases.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

from cqrs.eventstore.v1 import event_store_pb2 as pb
from google.protobuf import empty_pb2, struct_pb2

import domain

__all__ = [
    "PASSWORD",
    "created_append",
    "login_append",
    "proposed",
    "user_history_appends",
]

#: The password of every user the harness registers (meets the policy).
PASSWORD: Final = "Bench-password-1!"
# What a bcrypt hash at cost 12 looks like (60 characters): same payload size.
_FAKE_HASH: Final = "$2b$12$" + "b" * 53
_CLIENT_ADDRESS: Final = "127.0.0.1"


def proposed(event: domain.DomainEvent) -> pb.ProposedEvent:
    """The wire form of a domain event with a fresh id and its claim changes."""
    payload = struct_pb2.Struct()
    payload.update(domain.event_to_payload(event))
    changes = domain.claims_for(event)
    ns = domain.EMAIL_CLAIM_NAMESPACE
    return pb.ProposedEvent(
        event_id=str(uuid.uuid4()),
        event_type=event.EVENT_TYPE,
        payload=payload,
        claims=[pb.Claim(namespace=ns, value=v) for v in changes.take],
        releases=[pb.Claim(namespace=ns, value=v) for v in changes.release],
    )


def _register(user_id: str, now: datetime) -> domain.UserCreated:
    command = domain.RegisterUser(
        user_id=user_id,
        email=f"{user_id}@bench.example.com",
        password=PASSWORD,
        password_hash=_FAKE_HASH,
    )
    (event,) = domain.decide(None, command, now=now)
    assert isinstance(event, domain.UserCreated)
    return event


def created_append(user_id: str) -> pb.AppendRequest:
    """``user.created`` (taking the user's email) on a new stream."""
    event = _register(user_id, datetime.now(UTC))
    return pb.AppendRequest(
        aggregate_id=user_id,
        aggregate_type="user",
        no_stream=empty_pb2.Empty(),
        events=[proposed(event)],
    )


def login_append(user_id: str, version: int) -> pb.AppendRequest:
    """One ``user.login.recorded`` at exactly ``version`` + 1 (what RecordLogin appends)."""
    event = domain.LoginRecorded(
        aggregate_id=user_id,
        version=version + 1,
        occurred_at=datetime.now(UTC),
        client_address=_CLIENT_ADDRESS,
    )
    return pb.AppendRequest(
        aggregate_id=user_id, aggregate_type="user", exact=version, events=[proposed(event)]
    )


def _history(user_id: str, length: int, now: datetime) -> Iterator[domain.DomainEvent]:
    """A plausible life: registered, then logins, an email change every 10th event,
    a password change every 25th."""
    state = None
    created = _register(user_id, now)
    state = domain.evolve(state, created)
    yield created
    for n in range(2, length + 1):
        command: domain.Command
        if n % 10 == 0:
            command = domain.ChangeEmail(f"{user_id}-{n}@bench.example.com")
        elif n % 25 == 0:
            command = domain.ChangePassword(
                old_password=PASSWORD,
                new_password=PASSWORD + "x",
                old_password_matches=True,
                new_password_hash=_FAKE_HASH,
            )
        else:
            command = domain.RecordLogin(_CLIENT_ADDRESS)
        for event in domain.decide(state, command, now=now):
            state = domain.evolve(state, event)
            yield event


def user_history_appends(user_id: str, length: int, *, chunk: int) -> list[pb.AppendRequest]:
    """A new stream of ``length`` events (see ``_history``), ``chunk`` events per append,
    each append at the exact version the previous one left."""
    events = [proposed(e) for e in _history(user_id, length, datetime.now(UTC))]
    out = []
    for start in range(0, len(events), chunk):
        request = pb.AppendRequest(
            aggregate_id=user_id, aggregate_type="user", events=events[start : start + chunk]
        )
        if start == 0:
            request.no_stream.CopyFrom(empty_pb2.Empty())
        else:
            request.exact = start
        out.append(request)
    return out
