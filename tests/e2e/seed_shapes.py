"""The seed's response types, as its Go structs declare them, and a strict decoder.

A client written against the seed decodes each answer into one of these.
:func:`decode` is stricter than Go's ``encoding/json`` (which would leave a
missing key at its zero value): every key must be present with the seed's
JSON type. Extra keys are allowed, as Go ignores them; that is where our
own keys live on the seed's routes.

Types: ``str``, ``int`` (a JSON integer, never a boolean), :data:`Rfc3339`
(a string Go's ``time.Time`` parses), :data:`JsonText` (a string holding a
JSON object, the seed's ``payload``), ``Literal[...]``, ``list[T]``,
``dict[str, T]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NewType, TypeVar

Rfc3339 = NewType("Rfc3339", str)
JsonText = NewType("JsonText", str)
Status = Literal["active", "deactivated"]

# RFC 3339 as Go's time.RFC3339Nano parses it: date, "T", time, fraction, zone.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")

T = TypeVar("T")


class ShapeError(AssertionError):
    """An answer that a client of the seed could not decode as the seed's type."""


def decode(kind: type[T], value: Any, where: str = "$") -> T:
    """``value`` (parsed JSON) as ``kind``; ShapeError naming the first key that differs."""
    return typing.cast(T, _decode(kind, value, where))


def _decode(kind: Any, value: Any, where: str) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ShapeError(f"{where}: expected an object, got {value!r:.80}")
        hints = typing.get_type_hints(kind)
        decoded = {}
        for field in dataclasses.fields(kind):
            if field.name not in value:
                raise ShapeError(f"{where}: no key {field.name!r} (keys: {sorted(value)})")
            decoded[field.name] = _decode(
                hints[field.name], value[field.name], f"{where}.{field.name}"
            )
        return kind(**decoded)
    if kind is Rfc3339:
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise ShapeError(f"{where}: expected an RFC 3339 time, got {value!r:.80}")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return Rfc3339(value)
    if kind is JsonText:
        if not isinstance(value, str):
            raise ShapeError(f"{where}: expected a JSON-encoded string, got {value!r:.80}")
        if not isinstance(json.loads(value), dict):
            raise ShapeError(f"{where}: expected a JSON object in the string, got {value!r:.80}")
        return JsonText(value)
    if kind is str:
        if not isinstance(value, str):
            raise ShapeError(f"{where}: expected a string, got {value!r:.80}")
        return value
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShapeError(f"{where}: expected an integer, got {value!r:.80}")
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        if value not in args:
            raise ShapeError(f"{where}: expected one of {args}, got {value!r:.80}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ShapeError(f"{where}: expected an array, got {value!r:.80}")
        return [_decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where}: expected an object, got {value!r:.80}")
        return {k: _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(kind, types.UnionType):  # pragma: no cover - no seed type is optional
        raise TypeError(f"{where}: optional types are not the seed's")
    raise TypeError(f"{where}: no decoder for {kind!r}")


# --- the seed's types ----------------------------------------------------------------


@dataclass(frozen=True)
class ErrorBody:
    error: str


@dataclass(frozen=True)
class Health:
    status: str


@dataclass(frozen=True)
class StoreHealth:
    status: str
    total_events: int


@dataclass(frozen=True)
class Registered:
    id: str
    message: str


@dataclass(frozen=True)
class Changed:
    message: str


@dataclass(frozen=True)
class LoggedIn:
    token: str
    user_id: str
    email: str


@dataclass(frozen=True)
class User:
    """The query service's GORM model, encoded without json tags: Go field names."""

    ID: str
    Email: str
    Status: Status
    CreatedAt: Rfc3339
    UpdatedAt: Rfc3339


@dataclass(frozen=True)
class Event:
    id: str
    event_type: str
    aggregate_id: str
    payload: JsonText
    timestamp: Rfc3339
    version: int

    def data(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.payload)
        return decoded


@dataclass(frozen=True)
class Events:
    events: list[Event]
    count: int


@dataclass(frozen=True)
class AggregateEvents:
    aggregate_id: str
    events: list[Event]
    count: int


@dataclass(frozen=True)
class EventCount:
    total_events: int


@dataclass(frozen=True)
class Replayed:
    since: Rfc3339
    events: list[Event]
    count: int


@dataclass(frozen=True)
class UserState:
    id: str
    email: str
    status: Status
    created_at: Rfc3339
    updated_at: Rfc3339
    version: int
    event_count: int


@dataclass(frozen=True)
class State:
    user_id: str
    state: UserState
    message: str


@dataclass(frozen=True)
class StateAt:
    user_id: str
    point_in_time: Rfc3339
    state: UserState
    message: str


@dataclass(frozen=True)
class History:
    user_id: str
    history: list[UserState]
    total_changes: int
    message: str


@dataclass(frozen=True)
class FieldChange:
    before: str
    after: str


@dataclass(frozen=True)
class Comparison:
    user_id: str
    time1: Rfc3339
    time2: Rfc3339
    before: UserState
    after: UserState
    changes: dict[str, FieldChange]


@dataclass(frozen=True)
class SnapshotCreated:
    message: str
    aggregate_id: str


@dataclass(frozen=True)
class Snapshot:
    aggregate_id: str
    version: int
    state: UserState


@dataclass(frozen=True)
class SnapshotState:
    aggregate_id: str
    version: int
    email: str
    status: Status
    created_at: Rfc3339
    updated_at: Rfc3339
    event_count: int
