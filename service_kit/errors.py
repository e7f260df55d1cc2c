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

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from service_kit import deadlines
from service_kit.dependency_errors import classify
from service_kit.service_error import ServiceError, invalid

__all__ = [
    "ServiceError",
    "invalid",
    "register",
    "reported_status",
    "status_of",
    "streaming",
    "unary",
]

log = logging.getLogger(__name__)


_MAPPING: list[tuple[type[BaseException], grpc.StatusCode]] = []


def register(exc_type: type[BaseException], code: grpc.StatusCode) -> None:
    """Declares the status an exception type (and its subclasses) maps to."""
    _MAPPING.append((exc_type, code))


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller sees for an exception."""
    if isinstance(exc, ServiceError):
        return exc.code, exc.message
    for exc_type, code in _MAPPING:
        if isinstance(exc, exc_type):
            return code, str(exc)
    outage = classify(exc)
    if outage is not None:
        return (
            grpc.StatusCode.UNAVAILABLE,
            f"{outage.system} is unavailable: {outage.reason}; retry later",
        )
    return grpc.StatusCode.INTERNAL, "internal error; see the service log"


class _Context(Protocol):
    async def abort(self, code: grpc.StatusCode, details: str = "") -> Any: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self_ = TypeVar("Self_")


def reported_status(exc: Exception, where: str) -> tuple[grpc.StatusCode, str]:
    """:func:`status_of`, logging the error with its traceback when it is a bug
    (INTERNAL); call it inside the ``except`` block that caught ``exc``."""
    code, message = status_of(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in %s", where)
    elif code == grpc.StatusCode.UNAVAILABLE and not isinstance(exc, ServiceError):
        log.warning("%s: %s", where, message)  # an outage nobody named: no traceback
    return code, message


async def _abort(context: _Context, exc: Exception, method: str) -> None:
    await context.abort(*reported_status(exc, method))


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
