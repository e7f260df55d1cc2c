"""Slow and greedy HTTP clients: a uvicorn protocol that bounds them.

uvicorn keeps a connection that never finishes its request head open
forever (its keep-alive timer starts only after a first response), so
a few thousand half-sent heads exhaust the gateway's file descriptors.
:func:`guarded_protocol` builds an ``H11Protocol`` subclass, passed to
uvicorn as its ``http`` option, that enforces:

- **read timeout**: a request (head and body) must arrive within
  ``read_timeout`` seconds of its first byte, or of the connection
  opening; else 408 (nothing of a response was sent yet) and the
  connection is closed;
- **head size**: a head over :data:`MAX_HEAD_BYTES` is 431 and closed
  (h11 alone would answer 400);
- **connections**: beyond ``max_connections`` in all, or
  ``max_per_client`` from one client address, a new connection is answered
  503 with ``Retry-After`` and closed at once, so its descriptor is freed.

Refusals are reported through :func:`service_kit.refusals.refused`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar, Final

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service_kit.refusals import refused

__all__ = ["MAX_HEAD_BYTES", "guarded_protocol"]

MAX_HEAD_BYTES: Final = 64 * 1024
_END_OF_HEAD: Final = b"\r\n\r\n"
# h11 must not refuse a head first (with a 400): it may buffer more than we allow.
H11_BUFFER: Final = 2 * MAX_HEAD_BYTES + 64 * 1024


def _answer(status: int, reason: str, extra: bytes = b"") -> bytes:
    body = f'{{"error":"{reason}","code":"{status}"}}'.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\n".encode()
        + b"content-type: application/json\r\nconnection: close\r\n"
        + extra
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


class _GuardedProtocol(H11Protocol):
    """H11Protocol with the bounds of the module docstring (set by :func:`guarded_protocol`)."""

    read_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1000
    max_per_client: ClassVar[int] = 100
    per_client: ClassVar[Counter[str]]

    _timer: asyncio.TimerHandle | None = None
    _host: str = ""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
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

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            if self._timer is None:
                self._arm()  # the first byte of a new request on a kept-alive connection
            buffered = len(self.conn.trailing_data[0]) + len(data)
            if buffered > MAX_HEAD_BYTES and self._head_too_large(data):
                self._close_with(_answer(431, "Request Header Fields Too Large"))
                return
        super().data_received(data)
        if self.conn.their_state not in {h11.IDLE, h11.SEND_BODY}:
            self._disarm()  # the whole request is in (or the connection is done)

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def _head_too_large(self, data: bytes) -> bool:
        window = (self.conn.trailing_data[0] + data)[: MAX_HEAD_BYTES + len(_END_OF_HEAD)]
        return _END_OF_HEAD not in window

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
        if self.cycle is None or not self.cycle.response_started:
            self._close_with(_answer(408, "Request Timeout"))
        else:
            self.transport.close()

    def _refuse_connection(self, limit: str) -> None:
        refused(limit, 1)
        self._close_with(_answer(503, "Service Unavailable", b"retry-after: 1\r\n"))

    def _close_with(self, raw: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(raw)
            self.transport.close()


def guarded_protocol(
    *, read_timeout: float, max_connections: int, max_per_client: int
) -> type[H11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these bounds.

    Each call makes its own class: the per-client counts belong to one server.
    """
    attrs: dict[str, Any] = {
        "read_timeout": read_timeout,
        "max_connections": max_connections,
        "max_per_client": max_per_client,
        "per_client": Counter(),
    }
    return type("GuardedH11Protocol", (_GuardedProtocol,), attrs)
