"""HTTP errors of the gateway and the one mapping from gRPC status to HTTP.

Every error body has the same shape: ``{"error": "<message>", "code":
"<gRPC STATUS_NAME>"}``, whether the gateway refused the request itself or a
backend answered with a status. A 400 for invalid fields also lists each one,
``"violations": [{"field": "password", "description": "must be at least 8
characters"}, ...]`` (the backend's ``google.rpc.BadRequest``, or the
gateway's own check of the path, query and body), so a client can map every
error to its form field in one round trip. A retry delay (the backend's
``RetryInfo``, or its ``retry-after`` trailer) becomes ``Retry-After`` on a
429 or a 503. A caller's mistake is always a 4xx.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from service_kit import error_details, metadata
from service_kit.error_details import FieldViolation

T = TypeVar("T")

BEARER_CHALLENGE = 'Bearer realm="cqrs-users"'

# FAILED_PRECONDITION is 400, as in google.rpc's own mapping (code.proto): the
# backends use it for a command the user's current state forbids (e.g. a
# deactivated account), which the caller must fix, not retry; 409 is kept
# for ABORTED/ALREADY_EXISTS, the conflicts a client may resolve by re-reading.
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    # The backend answered something that is not a statement about the
    # request (it gave up, or said nothing usable): a bad gateway.
    grpc.StatusCode.CANCELLED: 502,
    grpc.StatusCode.UNKNOWN: 502,
    # The backend failed; the request was fine.
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
}


class GatewayError(Exception):
    """An error answered as ``status`` with the standard error body.

    ``code`` is a gRPC status name so that HTTP and gRPC clients see the
    same vocabulary; ``violations`` are the invalid fields of a 400.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        if status == 401:
            # RFC 7235 and 6750: a 401 names the scheme to authenticate with.
            self.headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
        self.violations = tuple(violations)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.violations)


def error_body(
    code: str, message: str, violations: Sequence[FieldViolation] = ()
) -> dict[str, Any]:
    """The JSON body of every error answer (``violations`` only when there are some)."""
    body: dict[str, Any] = {"error": message, "code": code}
    if violations:
        body["violations"] = [{"field": v.field, "description": v.description} for v in violations]
    return body


def bad_request(field: str, problem: str) -> GatewayError:
    """400 INVALID_ARGUMENT naming the field, e.g. ``limit: expected an integer``."""
    return bad_fields([FieldViolation(field, problem)])


def bad_fields(violations: Sequence[FieldViolation]) -> GatewayError:
    """400 INVALID_ARGUMENT listing every invalid field, in the message and in ``violations``."""
    return GatewayError(
        400,
        "INVALID_ARGUMENT",
        error_details.violations_text(violations),
        violations=violations,
    )


def check_each(items: Iterable[T], check: Callable[[T], object]) -> None:
    """Runs ``check`` on every item, then raises one 400 listing every field it refused.

    So that one answer names every bad field, not only the first; an error
    that names no field (e.g. a 413) is raised at once.
    """
    problems: list[FieldViolation] = []
    for item in items:
        try:
            check(item)
        except GatewayError as exc:
            if not exc.violations:
                raise
            problems.extend(exc.violations)
    if problems:
        raise bad_fields(problems)


def not_found(message: str) -> GatewayError:
    return GatewayError(404, "NOT_FOUND", message)


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> GatewayError:
    methods = sorted(set(allowed))
    return GatewayError(
        405,
        "UNIMPLEMENTED",
        f"method {method} is not allowed on {path}; allowed: {', '.join(methods)}",
        headers={"Allow": ", ".join(methods)},
    )


def too_large(limit: int) -> GatewayError:
    # RESOURCE_EXHAUSTED is what gRPC itself reports for an oversized message.
    return GatewayError(413, "RESOURCE_EXHAUSTED", f"body: larger than {limit} bytes")


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a gRPC status is answered with."""
    return HTTP_STATUS.get(code, 500)


def from_rpc_error(exc: grpc.aio.AioRpcError, *, backend: str = "") -> GatewayError:
    """The HTTP error for a call to ``backend`` (a service name) that failed.

    The status's rich details (:mod:`service_kit.error_details`) carry over:
    field violations as ``violations``, a retry delay as ``Retry-After``
    (whole seconds, at least 1) on RESOURCE_EXHAUSTED and UNAVAILABLE. A
    failure to reach the backend at all is reported without gRPC's transport
    detail, which would show clients the internal addresses.
    """
    code = exc.code()
    details = error_details.read(exc)
    headers: dict[str, str] = {}
    if code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
        if details.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(details.retry_after)))
        else:
            retry_after = metadata.get(exc.trailing_metadata(), "retry-after").strip()
            if retry_after.isdigit():
                headers["Retry-After"] = retry_after
    message = exc.details() or code.name.lower().replace("_", " ")
    if code == grpc.StatusCode.UNAVAILABLE and _is_transport_failure(message):
        message = f"{backend or 'the backend'} is unavailable; try again later"
    return GatewayError(
        http_status(code), code.name, message, headers=headers, violations=details.violations
    )


# Details grpc-core writes when no connection could be made or it broke.
_TRANSPORT_DETAILS = (
    "failed to connect",
    "connection refused",
    "socket closed",
    "connection reset",
    "dns resolution failed",
    "ipv4:",
    "ipv6:",
)


def _is_transport_failure(details: str) -> bool:
    lowered = details.lower()
    return any(marker in lowered for marker in _TRANSPORT_DETAILS)
