"""Events as JSON lines: the production backup's format for the event log.

One line per event with every column the store writes (claims included, so
a restored store knows which emails are taken); the payload is base64, as
it is opaque bytes. Lines are in position order, 1..P without a gap.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from store_svc.engine.model import Claim, PendingEvent, RecordedEvent, from_micros, to_micros

__all__ = ["from_line", "to_line"]


def _claims(claims: tuple[Claim, ...]) -> list[list[str]]:
    return [[c.namespace, c.value] for c in claims]


def to_line(event: PendingEvent) -> str:
    r = event.record
    body: dict[str, Any] = {
        "position": r.position,
        "event_id": r.event_id,
        "aggregate_id": r.aggregate_id,
        "aggregate_type": r.aggregate_type,
        "version": r.version,
        "event_type": r.event_type,
        "timestamp_us": to_micros(r.timestamp),
        "payload": base64.b64encode(r.payload).decode("ascii"),
        "correlation_id": r.correlation_id,
        "causation_id": r.causation_id,
        "claims": _claims(event.claims),
        "releases": _claims(event.releases),
    }
    return json.dumps(body, separators=(",", ":")) + "\n"


def from_line(line: str) -> PendingEvent:
    body = json.loads(line)
    record = RecordedEvent(
        position=int(body["position"]),
        event_id=body["event_id"],
        aggregate_id=body["aggregate_id"],
        aggregate_type=body["aggregate_type"],
        version=int(body["version"]),
        event_type=body["event_type"],
        timestamp=from_micros(int(body["timestamp_us"])),
        payload=base64.b64decode(body["payload"]),
        correlation_id=body["correlation_id"],
        causation_id=body["causation_id"],
    )
    return PendingEvent(
        record,
        tuple(Claim(ns, value) for ns, value in body["claims"]),
        tuple(Claim(ns, value) for ns, value in body["releases"]),
    )
