"""The exception every service raises for an answer with a gRPC status.

It lives apart from :mod:`service_kit.errors` (which re-exports it) so that
modules that :mod:`service_kit.errors` itself uses, such as
:mod:`service_kit.dependency_errors`, can subclass it without an import cycle.
"""

from __future__ import annotations

import grpc

from service_kit.error_details import RATE_LIMITED, Details, FieldViolation, violations_text


class ServiceError(Exception):
    """An error with the gRPC status it must be reported as, and the status's
    rich details (:mod:`service_kit.error_details`: field violations, a
    reason, a retry delay), sent along with it."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Details | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details if details is not None else Details()


def invalid(field: str, problem: str) -> ServiceError:
    """INVALID_ARGUMENT naming the field, e.g. ``limit: must be at most 1000``,
    with that field as its one field violation."""
    return invalid_fields([FieldViolation(field, problem)])


def invalid_fields(violations: list[FieldViolation]) -> ServiceError:
    """INVALID_ARGUMENT listing every violation, in its message and in its details."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        violations_text(violations),
        Details(violations=tuple(violations)),
    )


def rate_limited(message: str, retry_after: float) -> ServiceError:
    """RESOURCE_EXHAUSTED with when to retry (RetryInfo, ``retry-after``) and why (ErrorInfo)."""
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        Details(reason=RATE_LIMITED, retry_after=retry_after),
    )
