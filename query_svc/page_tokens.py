"""Opaque page tokens for keyset pagination.

A token is base64url (no padding) of a small JSON object holding the sort
key of the last row returned, the kind of list it belongs to, and the
filter it was issued for. Clients must treat it as opaque; nothing in it is
secret (it only repeats what the page showed).

Invariants:
- ``decode_*(encode_*(c), ...) == c`` for the same kind and filter.
- A token that is malformed, holds a number outside int64 (the columns'
  range), is of another kind, or was issued for another filter
  (AIP-158: the other request fields must not change between pages) is an
  INVALID_ARGUMENT naming ``page_token``, never a server error.
- Timestamps travel as integer microseconds since the epoch, so the cursor
  compares exactly with the stored values.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from service_kit.errors import ServiceError, invalid

FIELD: Final = "page_token"
_MAX_TOKEN: Final = 1024
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class UsersCursor:
    """After this user in (created_at, id) order, for this status filter (0: any)."""

    created_at: datetime
    id: str
    status: int


@dataclass(frozen=True, slots=True)
class LoginsCursor:
    """After this login in (login_at desc, id desc) order, for this user."""

    login_at: datetime
    id: int
    user_id: str


def _micros(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: object) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(FIELD, "is malformed")
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise invalid(FIELD, "is malformed") from None


def _pack(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unpack(token: str, kind: str) -> dict[str, Any]:
    if len(token) > _MAX_TOKEN:
        raise invalid(FIELD, "is malformed")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid(FIELD, "is malformed") from None
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise invalid(FIELD, "is malformed or belongs to another list")
    return payload


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(FIELD, "is malformed")
    return value


def _int(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    # Ids are BIGINT columns: anything outside int64 is forged, not a cursor we issued.
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not _INT64_MIN <= value <= _INT64_MAX
    ):
        raise invalid(FIELD, "is malformed")
    return value


def encode_users(cursor: UsersCursor) -> str:
    return _pack(
        {"k": "users", "c": _micros(cursor.created_at), "i": cursor.id, "s": cursor.status}
    )


def decode_users(token: str, *, status: int) -> UsersCursor:
    """The cursor of a ListUsers token; refused if issued for another status filter."""
    payload = _unpack(token, "users")
    cursor = UsersCursor(
        created_at=_from_micros(payload.get("c")), id=_str(payload, "i"), status=_int(payload, "s")
    )
    if cursor.status != status:
        raise _mismatch("status")
    return cursor


def encode_logins(cursor: LoginsCursor) -> str:
    return _pack(
        {"k": "logins", "t": _micros(cursor.login_at), "i": cursor.id, "u": cursor.user_id}
    )


def decode_logins(token: str, *, user_id: str) -> LoginsCursor:
    """The cursor of a GetLoginHistory token; refused if issued for another user."""
    payload = _unpack(token, "logins")
    cursor = LoginsCursor(
        login_at=_from_micros(payload.get("t")), id=_int(payload, "i"), user_id=_str(payload, "u")
    )
    if cursor.user_id != user_id:
        raise _mismatch("id")
    return cursor


def _mismatch(other: str) -> ServiceError:
    return invalid(FIELD, f"was issued for another {other}; request fields must not change")
