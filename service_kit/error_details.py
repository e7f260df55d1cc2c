"""Rich error details on gRPC statuses: written by every service, read by the gateway.

A status a caller can act on carries ``google.rpc`` details (the standard
error model, sent as ``grpc-status-details-bin`` through grpcio-status):

- ``BadRequest``: every invalid field at once, each with its path in proto
  names (``events[0].event_id``), a description and the rule it broke
  (``string.min_len``); on INVALID_ARGUMENT;
- ``ErrorInfo``: a machine-readable reason in the domain :data:`DOMAIN`
  (``RATE_LIMITED``, ``DEPENDENCY_UNAVAILABLE``) with metadata, e.g. which
  dependency is down;
- ``RetryInfo``: how long to wait before retrying (RESOURCE_EXHAUSTED,
  UNAVAILABLE). The same delay also goes out as ``retry-after`` trailing
  metadata in whole seconds, which clients without the protos can read.

Invariants: the details' code and message are the status's own (grpcio-status
refuses a status whose details disagree with it); :func:`read` never raises,
so a backend sending no or malformed details is just a status without them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "DEPENDENCY_UNAVAILABLE",
    "DOMAIN",
    "RATE_LIMITED",
    "RETRY_AFTER_METADATA",
    "Details",
    "FieldViolation",
    "read",
    "status_proto",
    "trailing_metadata",
    "violations_text",
]

DOMAIN: Final = "cqrs-users"
"""ErrorInfo.domain of every reason this system gives."""
RATE_LIMITED: Final = "RATE_LIMITED"
DEPENDENCY_UNAVAILABLE: Final = "DEPENDENCY_UNAVAILABLE"
RETRY_AFTER_METADATA: Final = "retry-after"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field: its path (proto names), why, and the rule's id."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Details:
    """What a status says beyond its code and message (all optional)."""

    violations: tuple[FieldViolation, ...] = ()
    reason: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None

    def __bool__(self) -> bool:
        return bool(self.violations or self.reason or self.retry_after is not None)


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_proto(code: grpc.StatusCode, message: str, details: Details) -> status_pb2.Status:
    """The ``google.rpc.Status`` of a status with these details."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if details.violations:
        status.details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=v.reason
                        )
                        for v in details.violations
                    ]
                )
            )
        )
    if details.reason:
        status.details.append(
            _packed(
                error_details_pb2.ErrorInfo(
                    reason=details.reason, domain=DOMAIN, metadata=dict(details.metadata)
                )
            )
        )
    if details.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(0, round(details.retry_after * 1000)))
        status.details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status


def trailing_metadata(
    code: grpc.StatusCode, message: str, details: Details
) -> tuple[tuple[str, str | bytes], ...]:
    """The trailing metadata that carries ``details`` (empty when there are none)."""
    if not details:
        return ()
    trailers: list[tuple[str, str | bytes]] = list(
        rpc_status.to_status(status_proto(code, message, details)).trailing_metadata
    )
    if details.retry_after is not None:
        trailers.append((RETRY_AFTER_METADATA, str(max(1, math.ceil(details.retry_after)))))
    return tuple(trailers)


def read(error: grpc.RpcError) -> Details:
    """The details a failed call carries (empty when it carries none or they do not parse)."""
    try:
        status = rpc_status.from_call(cast(grpc.Call, error))
    except (ValueError, AttributeError, TypeError):  # details disagreeing with the status
        status = None
    violations: list[FieldViolation] = []
    reason = ""
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            violations += (
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            )
        elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            retry_after = retry.retry_delay.ToMilliseconds() / 1000
    return Details(tuple(violations), reason, metadata, retry_after)


def violations_text(violations: Sequence[FieldViolation]) -> str:
    """A status message naming every violation: ``email: ...; password: ...``."""
    return "; ".join(f"{v.field}: {v.description}" for v in violations)
