"""Timestamps: the domain's only time representation and its text form.

Invariants:
- Every timestamp inside the domain is a timezone-aware ``datetime`` whose
  UTC offset is zero (``require_utc`` enforces it at every entry point).
- ``format_timestamp`` renders RFC 3339 ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``:
  the fraction appears only when microseconds are non-zero, and always has
  six digits, so ``parse_timestamp(format_timestamp(t)) == t`` exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.errors import ValidationError

__all__ = ["format_timestamp", "parse_timestamp", "require_utc"]

_ZERO = timedelta(0)


def require_utc(value: object, field: str) -> datetime:
    """Return ``value`` if it is an aware UTC ``datetime``; else raise ``ValidationError``."""
    if not isinstance(value, datetime):
        raise ValidationError(field, "must be a datetime")
    offset = value.utcoffset()
    if offset is None:
        raise ValidationError(field, "must be timezone-aware (UTC)")
    if offset != _ZERO:
        raise ValidationError(field, "must be in UTC")
    return value


def format_timestamp(dt: datetime) -> str:
    """Render an aware datetime as RFC 3339 UTC with a ``Z`` suffix.

    Aware non-UTC values are converted to UTC first; naive values are
    refused, because guessing their zone would silently shift history.
    """
    if dt.utcoffset() is None:
        raise ValidationError("timestamp", "must be timezone-aware (UTC)")
    utc = dt.astimezone(UTC)
    # Not strftime("%Y"): glibc does not zero-pad years below 1000.
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def parse_timestamp(text: str, field: str = "timestamp") -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; return it in UTC.

    A timestamp without an offset is refused (its instant is ambiguous).
    """
    if not isinstance(text, str) or not text:
        raise ValidationError(field, "must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"is not an RFC 3339 timestamp: {text[:64]!r}") from None
    if parsed.utcoffset() is None:
        raise ValidationError(field, "must include a UTC offset (e.g. 'Z')")
    return parsed.astimezone(UTC)
