"""to_service_error: every error a command can raise gets the right status."""

from __future__ import annotations

import grpc
import pytest

import domain
from command_svc.errors import (
    ClaimConflict,
    StoreConflict,
    StoreFailure,
    StoreUnavailable,
    to_service_error,
)
from service_kit.errors import ServiceError

pytestmark = pytest.mark.unit

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (domain.ValidationError("email", "is required"), C.INVALID_ARGUMENT, "email: is required"),
        (
            domain.InvalidCredentials("old_password"),
            C.INVALID_ARGUMENT,
            "old_password: does not match",
        ),
        (domain.UserNotFound("u1"), C.NOT_FOUND, "user 'u1' not found"),
        (domain.AlreadyExists("u1"), C.ALREADY_EXISTS, "user 'u1' already exists"),
        (domain.UserDeactivatedError("u1"), C.FAILED_PRECONDITION, "user 'u1' is deactivated"),
        (
            StoreUnavailable("DEADLINE_EXCEEDED: the store did not answer within 4.0s"),
            C.UNAVAILABLE,
            "event store unavailable (DEADLINE_EXCEEDED: the store did not answer within 4.0s);"
            " retry later",
        ),
        (StoreConflict("moved"), C.ABORTED, "moved"),
        (ServiceError(C.ABORTED, "as is"), C.ABORTED, "as is"),
    ],
)
def test_mapping(exc: Exception, code: grpc.StatusCode, message: str) -> None:
    mapped = to_service_error(exc)
    assert (mapped.code, mapped.message) == (code, message)


@pytest.mark.parametrize(
    "exc",
    [
        domain.VersionConflict(2, 4),
        domain.EventSequenceError("bad history"),
        StoreFailure(C.INVALID_ARGUMENT, "events[0].payload: bad"),
        ClaimConflict("claim user.email:'a@b.co' is already held by aggregate 'secret-id'"),
        RuntimeError("bug"),
    ],
)
def test_our_bugs_are_internal_and_hide_details(exc: Exception) -> None:
    mapped = to_service_error(exc)
    assert mapped.code == C.INTERNAL
    assert mapped.message == "internal error; see the service log"
