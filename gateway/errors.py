"""HTTP errors of the gateway and the one mapping from gRPC status to HTTP.

Every error body has the same shape: ``{"error": "<message>", "code":
"<gRPC STATUS_NAME>"}``, whether the gateway refused the request itself or a
backend answered with a status. A caller's mistake is always a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

from service_kit import metadata

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
    same vocabulary.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, str]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, str]:
    """The JSON body of every error answer."""
    return {"error": message, "code": code}


def bad_request(field: str, problem: str) -> GatewayError:
    """400 INVALID_ARGUMENT naming the field, e.g. ``limit: expected an integer``."""
    return GatewayError(400, "INVALID_ARGUMENT", f"{field}: {problem}")


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

    RESOURCE_EXHAUSTED carries the backend's ``retry-after`` trailing
    metadata (seconds) as a ``Retry-After`` header when present. A failure
    to reach the backend at all is reported without gRPC's transport detail,
    which would show clients the internal addresses.
    """
    code = exc.code()
    headers: dict[str, str] = {}
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        retry_after = metadata.get(exc.trailing_metadata(), "retry-after").strip()
        if retry_after.isdigit():
            headers["Retry-After"] = retry_after
    message = exc.details() or code.name.lower().replace("_", " ")
    if code == grpc.StatusCode.UNAVAILABLE and _is_transport_failure(message):
        message = f"{backend or 'the backend'} is unavailable; try again later"
    return GatewayError(http_status(code), code.name, message, headers=headers)


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
