"""Event versions that evolve: upcasters turn an older stored payload into the current one.

Each event type has a schema version (the contract's ``event_version``
option on its message in ``cqrs/events/v1``; a test holds
:func:`current_version` to it). A payload stored at version ``v`` below the
current one is read through the chain of upcasters ``v -> v+1 -> ...``, so
every reader (time travel, history, the command side, projections) sees the
current shape only, and old events never need rewriting.

Where the version lives: a stored payload of a type whose current version is
above 1 carries it under :data:`SCHEMA_KEY` (:func:`stamp`, at append); a
payload without it is version 1, which is every event stored before
versions existed (today's format, in clear or sealed alike). :func:`upcast`
removes the key, so no reader ever sees it.

Invariants: an upcaster is a pure function of the payload (no clock, no
I/O); it may add, rename or derive fields, never drop personal data a later
version still marks personal; the chain of a type has no gap (``v`` from 1
to current - 1); a payload newer than this code knows raises
:class:`~domain.errors.ValidationError` rather than being misread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from domain.errors import ValidationError
from domain.events import EVENT_TYPES, PasswordChanged

__all__ = ["SCHEMA_KEY", "UPCASTERS", "current_version", "stamp", "upcast"]

SCHEMA_KEY: Final = "_schema"
"""The stored payload key holding its schema version (absent: version 1)."""

Upcaster = Callable[[dict[str, object]], dict[str, object]]


def _password_changed_v1_to_v2(payload: dict[str, object]) -> dict[str, object]:
    # v1 (before sessions could be kept): every session ended, no session kept.
    return {"kept_session_id": ""} | payload


UPCASTERS: Final[Mapping[tuple[str, int], Upcaster]] = MappingProxyType(
    {(PasswordChanged.EVENT_TYPE, 1): _password_changed_v1_to_v2}
)
"""``(event type, version v) -> upcaster from v to v + 1``."""


def current_version(
    event_type: str, upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS
) -> int:
    """The version this code reads and writes for ``event_type`` (1 + its upcasters)."""
    version = 1
    while (event_type, version) in upcasters:
        version += 1
    return version


_CURRENT: Final[Mapping[str, int]] = MappingProxyType(
    {event_type: current_version(event_type) for event_type in EVENT_TYPES}
)


def stamp(event_type: str, payload: dict[str, object]) -> dict[str, object]:
    """``payload`` (as stored) with its schema version, when above 1 (modified in place)."""
    version = _CURRENT.get(event_type, 1)
    if version > 1:
        payload[SCHEMA_KEY] = version
    return payload


def upcast(
    event_type: str,
    payload: Mapping[str, object],
    upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
) -> dict[str, object]:
    """A stored payload in the current version of ``event_type``, without :data:`SCHEMA_KEY`."""
    out = dict(payload)
    stored = out.pop(SCHEMA_KEY, 1)
    # A protobuf Struct (the Event message's payload) carries every number as a double.
    if isinstance(stored, float) and stored.is_integer():
        stored = int(stored)
    if not isinstance(stored, int) or isinstance(stored, bool) or stored < 1:
        raise ValidationError(SCHEMA_KEY, f"must be a positive integer, got {stored!r}")
    version = stored
    current = current_version(event_type, upcasters)
    if version > current:
        raise ValidationError(
            SCHEMA_KEY, f"{event_type!r} version {version} is newer than this code ({current})"
        )
    while version < current:
        out = upcasters[(event_type, version)](out)
        version += 1
    return out
