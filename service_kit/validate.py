"""Checks of request fields shared by every service.

Each raises ``service_kit.errors.invalid`` naming the field, so a caller's
mistake is always INVALID_ARGUMENT (HTTP 400) with a message saying which
field is wrong and why.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from google.protobuf import timestamp_pb2

from service_kit.errors import invalid
from service_kit.timeconv import to_datetime

# The range RFC 3339 (and google.protobuf.Timestamp) can express.
_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_PAGE = 1000


# The form our own clients send: accepted without building a uuid.UUID.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_field(field: str, value: str) -> str:
    """A canonical lower-case UUID string."""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    if not value:
        raise invalid(field, "required")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise invalid(field, f"{value[:64]!r} is not a UUID") from None
    if str(parsed) != value.lower():
        raise invalid(field, f"{value[:64]!r} is not a canonical UUID (8-4-4-4-12 hex)")
    return str(parsed)


def page_size(field: str, value: int, *, default: int, maximum: int = MAX_PAGE) -> int:
    """0 means the default; otherwise 1..maximum."""
    if value == 0:
        return default
    if value < 0:
        raise invalid(field, f"must be positive, got {value}")
    if value > maximum:
        raise invalid(field, f"must be at most {maximum}, got {value}")
    return value


def timestamp(field: str, ts: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime from a Timestamp within RFC 3339's range."""
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS:
        raise invalid(field, "is outside 0001-01-01..9999-12-31")
    if not 0 <= ts.nanos < 1_000_000_000:
        raise invalid(field, "has nanos outside 0..999999999")
    return to_datetime(ts)


def optional_timestamp(field: str, has: bool, ts: timestamp_pb2.Timestamp) -> datetime | None:
    """Like :func:`timestamp`, or None when the field is unset."""
    return timestamp(field, ts) if has else None


def non_negative(field: str, value: int) -> int:
    if value < 0:
        raise invalid(field, f"must not be negative, got {value}")
    return value
