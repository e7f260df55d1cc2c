"""One mapping from exceptions to gRPC status codes, used by every servicer.

A caller's mistake never surfaces as UNKNOWN or INTERNAL: every exception a
caller can provoke is registered here (or raised as ServiceError) with the
code it deserves. A dependency that cannot serve (a driver error anywhere in
the exception's chain, see :mod:`service_kit.dependency_errors`) is
UNAVAILABLE with the reason, even where no code named the dependency.
Anything else is a bug and reported as INTERNAL with a generic message (the
details go to the log, not to the caller).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from service_kit import deadlines, error_details
from service_kit.dependency_errors import classify, unavailable_details
from service_kit.error_details import Details, FieldViolation
from service_kit.service_error import ServiceError, invalid, invalid_fields, rate_limited

__all__ = [
    "ServiceError",
    "abort",
    "invalid",
    "invalid_fields",
    "rate_limited",
    "register",
    "reported",
    "reported_status",
    "service_error_of",
    "status_of",
    "streaming",
    "unary",
]

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0
"""Seconds an UNAVAILABLE answer without a delay of its own tells the caller to wait."""


_MAPPING: list[tuple[type[BaseException], grpc.StatusCode]] = []


def register(exc_type: type[BaseException], code: grpc.StatusCode) -> None:
    """Declares the status an exception type (and its subclasses) maps to."""
    _MAPPING.append((exc_type, code))


def service_error_of(exc: BaseException) -> ServiceError:
    """The status (code, message, rich details) a caller sees for an exception.

    A registered exception with a ``field`` (such as the domain's
    ValidationError) is INVALID_ARGUMENT with that field as its violation.
    """
    if isinstance(exc, ServiceError):
        return exc
    for exc_type, code in _MAPPING:
        if isinstance(exc, exc_type):
            details = Details()
            field = getattr(exc, "field", None)
            if code == grpc.StatusCode.INVALID_ARGUMENT and isinstance(field, str) and field:
                problem = str(exc).removeprefix(f"{field}: ")
                details = Details(violations=(FieldViolation(field, problem),))
            return ServiceError(code, str(exc), details)
    outage = classify(exc)
    if outage is not None:
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            f"{outage.system} is unavailable: {outage.reason}; retry later",
            unavailable_details(outage.system),
        )
    return ServiceError(grpc.StatusCode.INTERNAL, "internal error; see the service log")


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller sees for an exception."""
    error = service_error_of(exc)
    return error.code, error.message


class _Context(Protocol):
    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> Any: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self_ = TypeVar("Self_")


def reported(exc: Exception, where: str) -> ServiceError:
    """:func:`service_error_of`, logging the error with its traceback when it is a
    bug (INTERNAL); call it inside the ``except`` block that caught ``exc``."""
    error = service_error_of(exc)
    if error.code == grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s", where)
    elif error.code == grpc.StatusCode.UNAVAILABLE and not isinstance(exc, ServiceError):
        log.warning("%s: %s", where, error.message)  # an outage nobody named: no traceback
    return error


def reported_status(exc: Exception, where: str) -> tuple[grpc.StatusCode, str]:
    """:func:`reported`'s code and message."""
    error = reported(exc, where)
    return error.code, error.message


async def abort(context: _Context, error: ServiceError) -> None:
    """Ends the call with ``error``'s status and its rich details (raises AbortError).

    UNAVAILABLE always says when to retry: its own delay, else a second.
    """
    details = error.details
    if error.code == grpc.StatusCode.UNAVAILABLE and details.retry_after is None:
        details = dataclasses.replace(details, retry_after=DEFAULT_RETRY_AFTER)
    trailers = error_details.trailing_metadata(error.code, error.message, details)
    await context.abort(error.code, error.message, trailers)


async def _abort(context: _Context, exc: Exception, method: str) -> None:
    await abort(context, reported(exc, method))


def unary(
    fn: Callable[[Self_, Req, Any], Awaitable[Resp]],
) -> Callable[[Self_, Req, Any], Awaitable[Resp]]:
    """Wraps a unary servicer method so its exceptions become proper statuses, and its
    dependency calls see the caller's deadline (:mod:`service_kit.deadlines`)."""

    @functools.wraps(fn)
    async def wrapper(self: Self_, request: Req, context: Any) -> Resp:
        try:
            with deadlines.from_call(context):
                return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, fn.__qualname__)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    fn: Callable[[Self_, Req, Any], AsyncIterator[Resp]],
) -> Callable[[Self_, Req, Any], AsyncIterator[Resp]]:
    """Wraps a server-streaming servicer method likewise."""

    @functools.wraps(fn)
    async def wrapper(self: Self_, request: Req, context: Any) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, fn.__qualname__)

    return wrapper
