"""Errors of the API as exceptions: one class per kind of answer, with the details.

Every failed call raises an :class:`ApiError` subclass chosen by its gRPC
status, carrying what the server said beyond the status:

- ``violations``: every invalid field of an :class:`InvalidArgument`
  (``google.rpc.BadRequest``), each with its path in proto names
  (``new_email``, ``events[0].event_id``), a description and the rule's id;
- ``retry_after``: seconds to wait (``google.rpc.RetryInfo``) on a
  :class:`RateLimited` or :class:`Unavailable`;
- ``reason`` and ``metadata``: ``google.rpc.ErrorInfo`` (e.g.
  ``DEPENDENCY_UNAVAILABLE`` with the dependency's name).

The details are read from the ``grpc-status-details-bin`` trailer with the
package's own betterproto classes of ``google.rpc`` (no protobuf runtime).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grpclib.const import Status
from grpclib.encoding.base import StatusDetailsCodecBase
from grpclib.exceptions import GRPCError

from cqrs_users_client.proto.google import rpc

__all__ = [
    "AlreadyExists",
    "ApiError",
    "Conflict",
    "Details",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
]


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field: its path, what is wrong, and the rule's id."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class Details:
    """What a status carries besides its code and message."""

    violations: tuple[FieldViolation, ...] = ()
    reason: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None


_TYPE_PREFIX = "type.googleapis.com/google.rpc."


def decode_details(data: bytes) -> Details:
    """The details of a serialized ``google.rpc.Status`` (unknown kinds are skipped)."""
    status = rpc.Status().parse(data)
    violations: list[FieldViolation] = []
    reason, metadata, retry_after = "", {}, None
    for item in status.details:
        kind = item.type_url.removeprefix(_TYPE_PREFIX)
        if kind == "BadRequest":
            bad = rpc.BadRequest().parse(item.value)
            violations += (
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            )
        elif kind == "ErrorInfo":
            info = rpc.ErrorInfo().parse(item.value)
            reason, metadata = info.reason, dict(info.metadata)
        elif kind == "RetryInfo":
            retry = rpc.RetryInfo().parse(item.value)
            retry_after = retry.retry_delay.total_seconds()
    return Details(tuple(violations), reason, metadata, retry_after)


class DetailsCodec(StatusDetailsCodecBase):
    """grpclib's hook for the ``grpc-status-details-bin`` trailer (decoding only)."""

    def encode(self, status: Status, message: str | None, details: Any) -> bytes:
        raise NotImplementedError("a client does not send error details")

    def decode(self, status: Status, message: str | None, data: bytes) -> Any:
        try:
            return decode_details(data)
        except Exception:  # a malformed trailer: the status is still reported
            return None


class ApiError(Exception):
    """A call the API refused or could not serve. ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str, details: Details | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        details = details or Details()
        self.violations = details.violations
        self.reason = details.reason
        self.metadata = dict(details.metadata)
        self.retry_after = details.retry_after

    def field_errors(self) -> dict[str, str]:
        """Each invalid field's description, by field path (for a form)."""
        return {v.field: v.description for v in self.violations}


class InvalidArgument(ApiError):
    """The request is invalid; ``violations`` lists every invalid field."""


class FailedPrecondition(ApiError):
    """The user's state forbids the command (e.g. a deactivated account)."""


class Unauthenticated(ApiError):
    """No valid token (missing, invalid, expired or revoked), or wrong credentials."""


class PermissionDenied(ApiError):
    """The caller may not do this."""


class NotFound(ApiError):
    """No such user, stream or snapshot."""


class Conflict(ApiError):
    """The request conflicts with the current state (ABORTED: changed meanwhile)."""


class AlreadyExists(Conflict):
    """Something the request would take is taken (e.g. the email)."""


class RateLimited(ApiError):
    """Too many requests; wait ``retry_after`` seconds."""


class Unavailable(ApiError):
    """The service or one of its dependencies is unavailable; retry (after ``retry_after``)."""


_BY_STATUS: dict[Status, type[ApiError]] = {
    Status.INVALID_ARGUMENT: InvalidArgument,
    Status.OUT_OF_RANGE: InvalidArgument,
    Status.FAILED_PRECONDITION: FailedPrecondition,
    Status.UNAUTHENTICATED: Unauthenticated,
    Status.PERMISSION_DENIED: PermissionDenied,
    Status.NOT_FOUND: NotFound,
    Status.ALREADY_EXISTS: AlreadyExists,
    Status.ABORTED: Conflict,
    Status.RESOURCE_EXHAUSTED: RateLimited,
    Status.UNAVAILABLE: Unavailable,
    Status.DEADLINE_EXCEEDED: Unavailable,
}


def from_grpc_error(error: GRPCError) -> ApiError:
    """The exception for a failed call."""
    details = error.details if isinstance(error.details, Details) else None
    kind = _BY_STATUS.get(error.status, ApiError)
    return kind(error.status.name, error.message or "", details)
