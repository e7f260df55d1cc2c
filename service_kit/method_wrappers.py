"""One wrapper per gRPC method, built once and reused.

grpc.aio asks every server interceptor for a handler on every call. An
interceptor that wraps the handler it is given (timing, an owner check)
need not build a new wrapper each time: the handler of a method is the same
object call after call, so the wrapper is kept and rebuilt only when the
handler it wraps changes (e.g. a refusing handler for one call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

H = TypeVar("H")

__all__ = ["MethodWrappers"]


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
