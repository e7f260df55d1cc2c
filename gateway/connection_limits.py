"""Slow and greedy HTTP clients: uvicorn protocols that bound them.

uvicorn keeps a connection that never finishes its request head open
forever (its keep-alive timer starts only after a first response), so
a few thousand half-sent heads exhaust the gateway's file descriptors.
:func:`guarded_protocol` builds a subclass of uvicorn's protocol for the
chosen parser (httptools, the C one, by default; or h11), passed to
uvicorn as its ``http`` option, that enforces:

- **read timeout**: a request (head and body) must arrive within
  ``read_timeout`` seconds of its first byte, or of the connection
  opening; else 408 (when no response is under way) and the connection
  is closed;
- **head size**: a head over :data:`MAX_HEAD_BYTES` is 431 and closed
  (h11 alone would answer 400; httptools has no bound at all and would
  buffer the head whole);
- **connections**: beyond ``max_connections`` in all, or
  ``max_per_client`` from one client address, a new connection is answered
  503 with ``Retry-After`` and closed at once, so its descriptor is freed.

The bounds (:class:`_Bounds`) are the same for both parsers; only how a
protocol knows where a request's head ends differs.

Refusals are reported through :func:`service_kit.refusals.refused`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar, Final, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service_kit.refusals import refused

__all__ = ["MAX_HEAD_BYTES", "PARSERS", "Parser", "guarded_protocol"]

MAX_HEAD_BYTES: Final = 64 * 1024
_END_OF_HEAD: Final = b"\r\n\r\n"
# h11 must not refuse a head first (with a 400): it may buffer more than we allow.
H11_BUFFER: Final = 2 * MAX_HEAD_BYTES + 64 * 1024

# httptools (C) costs about a third less of the gateway's CPU per request than h11.
Parser = Literal["httptools", "h11"]
PARSERS: Final[tuple[Parser, ...]] = ("httptools", "h11")


def _answer(status: int, reason: str, extra: bytes = b"") -> bytes:
    body = f'{{"error":"{reason}","code":"{status}"}}'.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/json\r\nconnection: close\r\n"
        + extra
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _ends_within(window: bytes, limit: int) -> bool:
    """Whether a head's end lies in the first ``limit`` bytes of ``window``."""
    return _END_OF_HEAD in window[: max(limit, 0)]


class _Bounds(asyncio.Protocol):
    """The bounds of the module docstring, mixed in before a uvicorn protocol.

    Invariant: a connection's read timer runs from the first byte of a request
    (or the connection opening) until the request is wholly in; a connection
    is counted in ``per_client`` from ``connection_made`` to ``connection_lost``.
    """

    read_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1000
    max_per_client: ClassVar[int] = 100
    per_client: ClassVar[Counter[str]]

    # Set by the uvicorn protocol this is mixed into.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    connections: set[Any]
    cycle: Any

    _timer: asyncio.TimerHandle | None = None
    _host: str = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        self.per_client[self._host] += 1
        if len(self.connections) > self.max_connections:
            self._refuse_connection("gateway.connections")
        elif self.per_client[self._host] > self.max_per_client:
            self._refuse_connection("gateway.connections_per_client")
        else:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.per_client[self._host] -= 1
        if self.per_client[self._host] <= 0:
            del self.per_client[self._host]
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        refused("gateway.read_timeout", 0)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self._close_with(_answer(408, "Request Timeout"))
        else:
            self.transport.close()  # half a response is out: a 408 cannot follow it

    def _refuse_connection(self, limit: str) -> None:
        refused(limit, 1)
        self._close_with(_answer(503, "Service Unavailable", b"retry-after: 1\r\n"))

    def _too_large(self) -> None:
        self._close_with(_answer(431, "Request Header Fields Too Large"))

    def _close_with(self, raw: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(raw)
            self.transport.close()


class _GuardedH11(_Bounds, H11Protocol):
    """h11: the parser's own state says whether a head is being read."""

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if self._timer is None:
                self._arm()  # the first byte of a new request on a kept-alive connection
            buffered = self.conn.trailing_data[0]
            if len(buffered) + len(data) > MAX_HEAD_BYTES and not _ends_within(
                buffered + data, MAX_HEAD_BYTES + len(_END_OF_HEAD)
            ):
                self._too_large()
                return
        super().data_received(data)
        if self.conn.their_state not in {h11.IDLE, h11.SEND_BODY}:
            self._disarm()  # the whole request is in (or the connection is done)

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()


class _GuardedHttpTools(_Bounds, HttpToolsProtocol):
    """httptools: the head's bytes are counted here, as the parser keeps no bound.

    Invariant: while ``_in_head``, ``_head_bytes`` counts the bytes received
    since the current head began and ``_tail`` holds its last three, so a head
    end split across reads is still found. Bytes of a pipelined request that
    arrive in the same read as the end of the one before are not counted (at
    most one read, which uvicorn bounds, then reading pauses for the pipeline).
    """

    _in_head: bool = True
    _message_open: bool = False
    _head_bytes: int = 0
    _tail: bytes = b""

    def data_received(self, data: bytes) -> None:
        if self._timer is None and not self._message_open:
            self._arm()  # the first byte of a new request on a kept-alive connection
        if self._in_head:
            seen = self._head_bytes + len(data)
            if seen > MAX_HEAD_BYTES and not _ends_within(
                self._tail + data,
                MAX_HEAD_BYTES + len(_END_OF_HEAD) - self._head_bytes + len(self._tail),
            ):
                self._too_large()
                return
            self._head_bytes = seen
            self._tail = (self._tail + data)[-(len(_END_OF_HEAD) - 1) :]
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._message_open = True
        if self._timer is None:
            self._arm()  # a pipelined request begun in the read that ended the one before
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()  # the whole request is in
        self._message_open = False
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()


_PROTOCOLS: Final[dict[Parser, type[_Bounds]]] = {
    "h11": _GuardedH11,
    "httptools": _GuardedHttpTools,
}


def guarded_protocol(
    *,
    read_timeout: float,
    max_connections: int,
    max_per_client: int,
    parser: Parser = "httptools",
) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these bounds.

    Each call makes its own class: the per-client counts belong to one server.
    """
    attrs: dict[str, Any] = {
        "read_timeout": read_timeout,
        "max_connections": max_connections,
        "max_per_client": max_per_client,
        "per_client": Counter(),
    }
    return type(f"Guarded{_PROTOCOLS[parser].__name__}", (_PROTOCOLS[parser],), attrs)
