"""command_svc's exceptions and the one place they become gRPC statuses.

The store client raises the ``StoreError`` family (never a raw grpc error);
the handlers raise domain errors and ``ServiceError``; :func:`to_service_error`
maps all of them. The mapping is local on purpose: ``service_kit.errors``
keeps one process-wide table in which the first matching registration wins,
and other services register ``domain.DomainError`` as a whole, which would
turn e.g. ``UserNotFound`` into FAILED_PRECONDITION when they share a process.

A caller's mistake is never INTERNAL: validation and a wrong old password
are INVALID_ARGUMENT naming the field. INTERNAL is kept for corrupt history
and for a store that refuses what we sent (a bug on our side); both are
logged with their details, which the caller does not see.
"""

from __future__ import annotations

import logging

import grpc

import domain
from service_kit.errors import ServiceError, invalid

__all__ = [
    "ClaimConflict",
    "StoreConflict",
    "StoreError",
    "StoreFailure",
    "StoreUnavailable",
    "StoreUnreached",
    "store_error",
    "to_service_error",
]

log = logging.getLogger(__name__)


class StoreError(Exception):
    """Root of the errors the event store client raises."""


class StoreConflict(StoreError):
    """The stream moved since it was loaded (the store said ABORTED)."""


class ClaimConflict(StoreError):
    """A unique claim (an email) is held by another stream (ALREADY_EXISTS).

    The store's message names the holder; it is kept for the log only and
    must never reach a caller.
    """


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time."""


class StoreUnreached(StoreUnavailable):
    """The store was not reached, or the connection broke before it answered.

    The append may or may not have been stored: resending the same event ids
    is safe (the store's idempotency returns the first result).
    """


class StoreFailure(StoreError):
    """The store refused a call for a reason that is a bug on our side."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def store_error(code: grpc.StatusCode, details: str) -> StoreError:
    """The ``StoreError`` for a status the store answered with."""
    if code == grpc.StatusCode.ABORTED:
        return StoreConflict(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return ClaimConflict(details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return StoreUnreached(f"{code.name}: {details}")
    if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return StoreUnavailable(f"{code.name}: {details}")
    return StoreFailure(code, details)


_INTERNAL = "internal error; see the service log"


def to_service_error(exc: Exception) -> ServiceError:
    """The status a caller sees for ``exc`` (see the module docstring)."""
    match exc:
        case ServiceError():
            return exc
        case domain.ValidationError() | domain.InvalidCredentials() | domain.InvalidToken():
            # InvalidCredentials is a wrong *old* password: the caller is
            # already authenticated, so it is a bad argument (HTTP 400), not
            # UNAUTHENTICATED (401, which would suggest the token is bad).
            return invalid(exc.field, str(exc).removeprefix(f"{exc.field}: "))
        case domain.UserNotFound():
            return ServiceError(grpc.StatusCode.NOT_FOUND, str(exc))
        case domain.AlreadyExists():
            return ServiceError(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        case (
            domain.UserDeactivatedError()
            | domain.UserErasedError()
            | domain.NotDeactivated()
            | domain.LastActiveAdmin()
        ):
            return ServiceError(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        case StoreUnavailable():
            # The detail is the store's own answer (e.g. its storage's outage) or our
            # timeout: what was unavailable and why, never a traceback.
            return ServiceError(
                grpc.StatusCode.UNAVAILABLE, f"event store unavailable ({exc}); retry later"
            )
        case StoreConflict():
            return ServiceError(grpc.StatusCode.ABORTED, str(exc))
        case _:
            # Corrupt history (VersionConflict, EventSequenceError, ...),
            # StoreFailure, ClaimConflict not translated by a handler, bugs.
            log.error("command failed: %r", exc, exc_info=exc)
            return ServiceError(grpc.StatusCode.INTERNAL, _INTERNAL)
