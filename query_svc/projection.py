"""How events change the read model: pure functions, no I/O.

A user's read-model rows (``users`` and ``auth_projections``) are one
:class:`ProjectedUser`; a login adds a :class:`LoginRow`. :func:`project_batch`
folds a batch of events over the rows the batch touches and returns the
final rows to write, so a batch costs a handful of statements whatever its
size.

Invariants:
- A user's events apply in version order: a stream starts with
  ``user.created`` at version 1 and each later event has the row's version
  + 1. An event at or below the row's version is already reflected and is
  skipped (idempotent); anything else is a :class:`ProjectionError`, since
  applying it would make the row silently wrong.
- Every event bumps ``version`` and ``updated_at``; event types this code
  does not know do only that (tolerant reader: an older query_svc keeps
  counting versions of a newer store's streams).
- ``password_hash`` only ever goes to ``auth_projections``; nothing that
  leaves this service reads it except the login check.
- ``user.erased`` blanks the user's personal columns: the email reads
  "[ERASED]" (``auth_projections`` holds a per-user placeholder without '@',
  which no login can match and which keeps the column unique), the password
  hash is emptied, the status is "erased", and every login row of the user
  loses its client address (:attr:`BatchChanges.erased`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Final, assert_never

import domain
from query_svc.source import StoredEvent

ACTIVE: Final = domain.UserStatus.ACTIVE.value
DEACTIVATED: Final = domain.UserStatus.DEACTIVATED.value
ERASED_STATUS: Final = domain.UserStatus.ERASED.value
ERASED: Final = "[ERASED]"
"""What an erased personal column reads (``pii.codec.ERASED``)."""


class ProjectionError(Exception):
    """An event cannot be applied to the read model (gap, bad order, bad payload)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectedUser:
    """One user as the read model holds it (both tables' columns)."""

    id: str
    email: str
    role: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    login_count: int = 0
    deactivated_at: datetime | None = None
    email_verified: bool = False
    credential_version: int = 0
    kept_session_id: str = ""
    kept_floor: int = 0
    password_hash: str = field(default="", repr=False)

    @property
    def epoch(self) -> domain.CredentialEpoch:
        """Which of the user's tokens are still valid (see ``domain.sessions``)."""
        return domain.CredentialEpoch(
            self.credential_version, self.kept_session_id, self.kept_floor
        )

    def users_row(self) -> dict[str, object]:
        """The ``users`` columns."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "status": self.status,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_login_at": self.last_login_at,
            "login_count": self.login_count,
            "deactivated_at": self.deactivated_at,
            "email_verified": self.email_verified,
        }

    def auth_row(self) -> dict[str, object]:
        """The ``auth_projections`` columns."""
        return {
            "user_id": self.id,
            # Unique per user and without '@': an erased address matches no login.
            "email": f"{ERASED}:{self.id}" if self.email == ERASED else self.email,
            "password_hash": self.password_hash,
            "role": self.role,
            "status": self.status,
            "version": self.version,
            "credential_version": self.credential_version,
            "kept_session_id": self.kept_session_id,
            "kept_floor": self.kept_floor,
        }


_FIELDS: Final = tuple(f.name for f in fields(ProjectedUser))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRow:
    """One ``login_histories`` row; ``id`` is the login event's global position."""

    id: int
    user_id: str
    login_at: datetime
    client_address: str
    version: int

    def row(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "login_at": self.login_at,
            "client_address": self.client_address,
            "version": self.version,
        }


def decode(stored: StoredEvent) -> domain.DomainEvent | None:
    """The domain event ``stored`` holds; None for a type this code does not know."""
    try:
        return domain.event_from_payload(
            stored.event_type,
            stored.payload,
            aggregate_id=stored.aggregate_id,
            version=stored.version,
            occurred_at=stored.occurred_at,
        )
    except domain.UnknownEventType:
        return None
    except domain.ValidationError as exc:
        raise ProjectionError(
            f"event at position {stored.position} ({stored.event_type}) is malformed: {exc}"
        ) from None


def apply(
    user: ProjectedUser | None, stored: StoredEvent
) -> tuple[ProjectedUser | None, LoginRow | None]:
    """The user's rows after ``stored``, and the login row it adds if any.

    Returns ``user`` itself (and no login) when the event is already reflected.
    """
    if user is not None and stored.version <= user.version:
        return user, None
    expected = 1 if user is None else user.version + 1
    if stored.version != expected:
        raise ProjectionError(
            f"user {stored.aggregate_id}: event at position {stored.position} has version "
            f"{stored.version}, the read model expects {expected}"
        )
    event = decode(stored)
    if user is None:
        if not isinstance(event, domain.UserCreated):
            raise ProjectionError(
                f"user {stored.aggregate_id}: stream starts with {stored.event_type!r} "
                f"at position {stored.position}, not 'user.created'"
            )
        return (
            ProjectedUser(
                id=event.aggregate_id,
                email=event.email,
                role=event.role,
                status=ACTIVE,
                version=1,
                created_at=event.occurred_at,
                updated_at=event.occurred_at,
                password_hash=event.password_hash,
            ),
            None,
        )
    # Every event bumps version and updated_at; each case adds its own fields.
    changes: dict[str, object] = {"version": stored.version, "updated_at": stored.occurred_at}
    login = None
    match event:
        case None:
            pass
        case domain.UserCreated():
            raise ProjectionError(
                f"user {stored.aggregate_id}: second 'user.created' at position {stored.position}"
            )
        case domain.PasswordChanged() | domain.PasswordReset():
            changes["password_hash"] = event.password_hash
        case domain.EmailChanged():
            changes["email"] = event.new_email
            changes["email_verified"] = False
        case domain.EmailVerified():
            changes["email_verified"] = True
        case domain.UserErased():
            changes |= {"status": ERASED_STATUS, "email": ERASED, "password_hash": ""}
        case domain.UserDeactivated():
            changes["status"] = DEACTIVATED
            changes["deactivated_at"] = event.occurred_at
        case domain.UserReactivated():
            changes["status"] = ACTIVE
            changes["deactivated_at"] = None
        case domain.SessionsRevoked() | domain.SessionRevoked() | domain.PasswordResetRequested():
            pass
        case domain.LoginRecorded():
            changes["last_login_at"] = event.occurred_at
            changes["login_count"] = user.login_count + 1
            login = LoginRow(
                id=stored.position,
                user_id=user.id,
                login_at=event.occurred_at,
                client_address=event.client_address,
                version=event.version,
            )
        case _:
            assert_never(event)
    ended = domain.sessions_ended(event) if event is not None else None
    if ended is not None:
        epoch = user.epoch.after(ended)
        changes["credential_version"] = epoch.version
        changes["kept_session_id"] = epoch.kept_session_id
        changes["kept_floor"] = epoch.kept_floor
    return _evolved(user, changes), login


def _evolved(user: ProjectedUser, changes: dict[str, object]) -> ProjectedUser:
    # One copy per event (copying was the top cost of a rebuild), and a little
    # cheaper than dataclasses.replace(), which re-inspects the fields each call.
    values = {name: getattr(user, name) for name in _FIELDS}
    values.update(changes)
    return ProjectedUser(**values)


@dataclass(slots=True)
class BatchChanges:
    """What a batch does to the tables.

    ``inserted`` are users whose first event is in the batch, ``updated``
    users that existed before it (both at their final state);
    ``erased`` are users erased by the batch, whose login rows must lose
    their client addresses; ``email_moved`` are ids among ``updated`` whose email changed, whose old
    addresses must be released before any row takes its new one; it is empty
    when no mover takes an address another mover held before the batch (the
    common case), because then the rows can be written in any order.
    """

    inserted: dict[str, ProjectedUser] = field(default_factory=dict)
    updated: dict[str, ProjectedUser] = field(default_factory=dict)
    email_moved: set[str] = field(default_factory=set)
    logins: list[LoginRow] = field(default_factory=list)
    erased: set[str] = field(default_factory=set)
    applied: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.inserted or self.updated or self.logins or self.erased)


def touched_ids(events: Sequence[StoredEvent]) -> list[str]:
    """Distinct aggregate ids of ``events``, in first-seen order."""
    return list(dict.fromkeys(e.aggregate_id for e in events))


def project_batch(
    events: Sequence[StoredEvent], existing: Mapping[str, ProjectedUser]
) -> BatchChanges:
    """Folds ``events`` (in position order) over the ``existing`` rows they touch.

    ``existing`` must hold every touched user that has rows already; it is not
    modified.
    """
    changes = BatchChanges()
    current: dict[str, ProjectedUser | None] = {}
    for stored in events:
        uid = stored.aggregate_id
        before = current[uid] if uid in current else existing.get(uid)
        after, login = apply(before, stored)
        if after is before:
            continue
        current[uid] = after
        changes.applied += 1
        if login is not None:
            changes.logins.append(login)
        if stored.event_type == domain.UserErased.EVENT_TYPE:
            changes.erased.add(uid)
    released: set[str] = set()  # addresses the movers held before the batch
    for uid, user in current.items():
        assert user is not None  # apply never returns None for a new state
        old = existing.get(uid)
        if old is None:
            changes.inserted[uid] = user
        else:
            changes.updated[uid] = user
            if user.email != old.email:
                changes.email_moved.add(uid)
                released.add(old.email)
    if not any(changes.updated[uid].email in released for uid in changes.email_moved):
        # Nobody takes a released address: no row can collide mid-write, so
        # the writer need not park the movers first (one statement fewer).
        changes.email_moved.clear()
    return changes
