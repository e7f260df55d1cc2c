"""One wrapper per gRPC method, built once and reused.

grpc.aio asks every server interceptor for a handler on every call. An
interceptor that wraps the handler it is given (timing, an owner check)
need not build a new wrapper each time: the handler of a method is the same
object call after call, so the wrapper is kept and rebuilt only when the
handler it wraps changes (e.g. a refusing handler for one call).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import grpc

H = TypeVar("H")

__all__ = ["MethodWrappers", "ParsingHandlerInterceptor", "prechecked"]

if TYPE_CHECKING:
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    _InterceptorBase: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:  # the runtime classes are not generic; only the stubs are
    _Handler = grpc.RpcMethodHandler
    _InterceptorBase = grpc.aio.ServerInterceptor

Precheck = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[None]]
"""Runs on the parsed request before the handler; it ends the call by aborting."""


class MethodWrappers(Generic[H]):
    """Wrappers by method name, each valid for the exact handler it wraps.

    Keys are method names the server has (the caller only wraps a handler
    that exists), so the table is bounded by the server's methods.
    """

    def __init__(self, wrap: Callable[[str, H], H]) -> None:
        self._wrap = wrap
        self._entries: dict[str, tuple[H, H]] = {}

    def get(self, method: str, handler: H) -> H:
        """``wrap(method, handler)``, built once for as long as ``handler`` is the same."""
        entry = self._entries.get(method)
        if entry is None or entry[0] is not handler:
            entry = self._entries[method] = (handler, self._wrap(method, handler))
        return entry[1]


def prechecked(
    handler: _Handler,
    before: Precheck,
    *,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> _Handler | None:
    """A handler like ``handler`` that awaits ``before(request, context)`` first.

    For unary-request handlers only (None for a client-streaming one: it has
    no single request to look at). A server-streaming handler may be an async
    generator or a coroutine writing with ``context.write()``; both are kept.
    ``request_deserializer``, when given, replaces the handler's own.
    """
    parse = request_deserializer or handler.request_deserializer
    if handler.unary_unary is not None:
        inner_uu: Callable[..., Awaitable[Any]] = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await before(request, context)
            return await inner_uu(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=parse,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        inner_us: Callable[..., Any] = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await before(request, context)
            if inspect.isasyncgenfunction(inner_us):
                async for item in inner_us(request, context):
                    yield item
            else:
                await inner_us(request, context)  # writes with context.write()

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=parse,
            response_serializer=handler.response_serializer,
        )
    return None


class ParsingHandlerInterceptor(_InterceptorBase):
    """Wraps the handler of every method that parses its request with ``wrap(handler)``.

    An unknown method (UNIMPLEMENTED) and a refusing handler that never
    parses its request (no ``request_deserializer``) are passed on as they
    are. A method's wrapper is built once per inner handler (:class:`MethodWrappers`).
    """

    def __init__(self, wrap: Callable[[_Handler], _Handler]) -> None:
        self._wrappers: MethodWrappers[_Handler] = MethodWrappers(
            lambda method, handler: wrap(handler)
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler:
        handler: _Handler | None = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler  # type: ignore[return-value]
        return self._wrappers.get(handler_call_details.method, handler)
