"""Comparing two states field by field, without ever showing the hash.

``diff_states(a, b)`` returns one :class:`FieldChange` per public field
(:data:`domain.state.PUBLIC_FIELDS`, in that order) whose rendered value
differs between ``a`` and ``b``, followed by the pseudo-field ``password``
if the password changed. A missing state (``None``, e.g. before the user
existed) renders every field as ``""``.

Rendering: ``str`` as is, ``int`` in decimal, ``UserStatus`` by value,
datetimes by :func:`~domain.timefmt.format_timestamp`, ``None`` as ``""``.

The pseudo-field ``password`` is derived from ``password_version`` only,
never from the hash: ``before`` renders as ``"unchanged"`` (the baseline) and
``after`` as ``"changed"`` if ``b``'s password version differs from ``a``'s,
else ``"unchanged"`` (so it appears in the output only when it changed). A
missing state renders ``""`` here too. No ``password_hash`` field is ever
produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from domain.state import PUBLIC_FIELDS, UserState
from domain.timefmt import format_timestamp

__all__ = [
    "PASSWORD_CHANGED",
    "PASSWORD_FIELD",
    "PASSWORD_UNCHANGED",
    "FieldChange",
    "changed_fields",
    "diff_states",
    "render_value",
]

PASSWORD_FIELD: Final = "password"
PASSWORD_UNCHANGED: Final = "unchanged"
PASSWORD_CHANGED: Final = "changed"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field whose rendered value differs: ``before != after``."""

    field: str
    before: str
    after: str


def render_value(value: object) -> str:
    """Render one public field value as text (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def diff_states(a: UserState | None, b: UserState | None) -> tuple[FieldChange, ...]:
    """Return the changes from ``a`` to ``b`` (see the module docstring)."""
    changes = [
        FieldChange(name, before, after)
        for name in PUBLIC_FIELDS
        if (before := _render_field(a, name)) != (after := _render_field(b, name))
    ]
    before_pw, after_pw = _render_password(a, b)
    if before_pw != after_pw:
        changes.append(FieldChange(PASSWORD_FIELD, before_pw, after_pw))
    return tuple(changes)


def changed_fields(before: UserState | None, after: UserState | None) -> tuple[str, ...]:
    """Names of the fields :func:`diff_states` reports, in the same order."""
    return tuple(change.field for change in diff_states(before, after))


def _render_field(state: UserState | None, name: str) -> str:
    return "" if state is None else render_value(getattr(state, name))


def _render_password(a: UserState | None, b: UserState | None) -> tuple[str, str]:
    before = "" if a is None else PASSWORD_UNCHANGED
    if b is None:
        return before, ""
    # A missing baseline counts as "no password yet", so any state differs.
    baseline = 0 if a is None else a.password_version
    after = PASSWORD_CHANGED if b.password_version != baseline else PASSWORD_UNCHANGED
    return before, after
