"""One mapping from exceptions to gRPC status codes, used by every servicer.

A caller's mistake never surfaces as UNKNOWN or INTERNAL: every exception a
caller can provoke is registered here (or raised as ServiceError) with the
code it deserves. Anything unregistered is a bug and reported as INTERNAL
with a generic message (the details go to the log, not to the caller).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with the gRPC status it must be reported as."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, problem: str) -> ServiceError:
    """INVALID_ARGUMENT naming the field, e.g. ``limit: must be at most 1000``."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {problem}")


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
    return code, message


async def _abort(context: _Context, exc: Exception, method: str) -> None:
    await context.abort(*reported_status(exc, method))


def unary(
    fn: Callable[[Self_, Req, Any], Awaitable[Resp]],
) -> Callable[[Self_, Req, Any], Awaitable[Resp]]:
    """Wraps a unary servicer method so its exceptions become proper statuses."""

    @functools.wraps(fn)
    async def wrapper(self: Self_, request: Req, context: Any) -> Resp:
        try:
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
