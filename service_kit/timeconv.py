"""Conversions between protobuf Timestamps and aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def to_datetime(ts: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime with microsecond precision."""
    return datetime.fromtimestamp(ts.seconds, tz=UTC).replace(microsecond=ts.nanos // 1000)


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
