"""Requests whose bytes do not parse: INVALID_ARGUMENT naming the message type, on every server.

grpc.aio parses a request with the handler's ``request_deserializer`` before
any handler code runs; a ``DecodeError`` there ends the call as UNKNOWN
("Unexpected <class DecodeError>"), which tells the caller nothing and reads
as a server fault. :class:`MalformedRequestInterceptor` swaps every parsing
handler's deserializer for one that turns the error into a
:class:`Malformed` value, and ends the call on it:

- a unary request: the call aborts with INVALID_ARGUMENT (field ``request``,
  ``not a valid cqrs.query.v1.LoginRequest message: ...``) before anything
  else reads the request;
- a client stream: the message that does not parse ends the stream with the
  same status, raised from the request iterator as a
  :class:`~service_kit.errors.ServiceError`; the servicer answers what it
  read before (``errors.streaming`` turns it into the status), and a servicer
  that lets it through is aborted here.

It sits after the metrics interceptor (a malformed call is counted) and
before the access interceptor, whose refusals carry no deserializer at all
(the request is never parsed): an anonymous caller still gets 401 first,
and no access rule or request rule ever sees a :class:`Malformed`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from service_kit import errors
from service_kit.errors import ServiceError, invalid
from service_kit.method_wrappers import ParsingHandlerInterceptor, prechecked

__all__ = ["Malformed", "MalformedRequestInterceptor", "tolerant"]

if TYPE_CHECKING:
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:  # the runtime class is not generic; only the stubs are
    _Handler = grpc.RpcMethodHandler


@dataclass(frozen=True, slots=True)
class Malformed:
    """What a request that does not parse becomes: the error to answer with."""

    error: ServiceError


def tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """``parse``, returning a :class:`Malformed` instead of raising ``DecodeError``."""
    owner = getattr(parse, "__self__", None)  # Message.FromString is bound to its class
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", "") or "request"

    def parse_or_malformed(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError as exc:
            reason = str(exc).rpartition(": ")[2] or "the bytes do not parse"
            return Malformed(invalid("request", f"not a valid {name} message: {reason}"))

    return parse_or_malformed


async def _refuse_malformed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(request, Malformed):
        await errors.abort(context, request.error)


async def _parsed(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            raise request.error
        yield request


def _client_streaming(handler: _Handler, parse: Callable[[bytes], Any]) -> _Handler:
    serialize = handler.response_serializer
    if handler.stream_unary is not None:
        inner_su: Callable[..., Awaitable[Any]] = handler.stream_unary

        async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
            try:
                return await inner_su(_parsed(requests), context)
            except ServiceError as exc:
                await errors.abort(context, exc)

        return grpc.stream_unary_rpc_method_handler(
            stream_unary, request_deserializer=parse, response_serializer=serialize
        )
    assert handler.stream_stream is not None  # the one shape left
    inner_ss: Callable[..., Any] = handler.stream_stream

    async def stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        try:
            if inspect.isasyncgenfunction(inner_ss):
                async for item in inner_ss(_parsed(requests), context):
                    yield item
            else:
                await inner_ss(_parsed(requests), context)  # writes with context.write()
        except ServiceError as exc:
            await errors.abort(context, exc)

    return grpc.stream_stream_rpc_method_handler(
        stream_stream, request_deserializer=parse, response_serializer=serialize
    )


def _guarded(handler: _Handler) -> _Handler:
    assert handler.request_deserializer is not None  # only parsing handlers are passed
    parse = tolerant(handler.request_deserializer)
    wrapped = prechecked(handler, _refuse_malformed, request_deserializer=parse)
    return wrapped if wrapped is not None else _client_streaming(handler, parse)


class MalformedRequestInterceptor(ParsingHandlerInterceptor):
    """Answers INVALID_ARGUMENT to a request that does not parse (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(_guarded)
