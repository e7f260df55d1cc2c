"""Builders of StoredEvents for one user's stream, as the store would deliver them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from query_svc.source import StoredEvent

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HASH1 = "$2b$04$" + "a" * 53
HASH2 = "$2b$04$" + "b" * 53


@dataclass
class Log:
    """A global log: each appended event gets the next position and a later time."""

    position: int = 0
    versions: dict[str, int] = field(default_factory=dict)

    def event(self, user_id: str, event_type: str, **payload: str) -> StoredEvent:
        self.position += 1
        version = self.versions.get(user_id, 0) + 1
        self.versions[user_id] = version
        return StoredEvent(
            position=self.position,
            event_id=str(uuid.uuid4()),
            aggregate_id=user_id,
            event_type=event_type,
            version=version,
            occurred_at=T0 + timedelta(seconds=self.position),
            payload=payload,
        )

    def created(self, user_id: str, email: str, *, role: str = "user") -> StoredEvent:
        return self.event(user_id, "user.created", email=email, password_hash=HASH1, role=role)

    def password(self, user_id: str, password_hash: str = HASH2) -> StoredEvent:
        return self.event(user_id, "user.password.changed", password_hash=password_hash)

    def email(self, user_id: str, old: str, new: str) -> StoredEvent:
        return self.event(user_id, "user.email.changed", old_email=old, new_email=new)

    def deactivated(self, user_id: str, reason: str = "") -> StoredEvent:
        return self.event(user_id, "user.deactivated", reason=reason)

    def login(self, user_id: str, address: str = "10.0.0.1") -> StoredEvent:
        return self.event(user_id, "user.login.recorded", client_address=address)


def new_id() -> str:
    return str(uuid.uuid4())
