"""Conversions between protobuf Timestamps and aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime with microsecond precision.

    Nanos outside 0..999,999,999 (a malformed binary Timestamp; JSON cannot
    write one) are read as the time they add up to, never an error.
    """
    seconds, nanos = divmod(ts.seconds * 1_000_000_000 + ts.nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)


def to_timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp for an aware datetime (naive ones are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt)
    return ts


def utcnow() -> datetime:
    """The clock, read in one place so that the domain never reads it."""
    return datetime.now(UTC)
