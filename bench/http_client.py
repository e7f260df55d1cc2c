"""A minimal keep-alive HTTP/1.1 client for the load generator.

The load generator shares the two cores with the servers it measures, so
its client must cost little per request: this one writes a request in one
``write`` and reads the status line, the headers and a ``Content-Length``
body (what the gateway and the echo server answer), nothing else. The same
client talks to the gateway and to the echo ceiling, so their ratio compares
servers, not clients.

Invariants: one request at a time per connection (a closed loop); any
answer without ``Content-Length``, or a connection lost mid-answer, is an
error (never a silently short body); a reused connection the server closed
while idle (its keep-alive timeout) is opened anew and the request sent once
more, since the server never read it; every read is bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpAnswer", "HttpConnection", "HttpError"]


class HttpError(Exception):
    """An answer the benchmark did not expect (status, shape or connection)."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def expect(self, status: int) -> HttpAnswer:
        if self.status != status:
            raise HttpError(f"HTTP {self.status}, expected {status}: {self.body[:300]!r}")
        return self


class HttpConnection:
    """One keep-alive connection to ``host:port``."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host_header = f"Host: {host}:{port}\r\n".encode()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> HttpAnswer:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        head.extend(f"{name}: {value}\r\n".encode() for name, value in headers)
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Type: application/json\r\n")
            head.append(f"Content-Length: {len(body)}\r\n".encode())
        head.append(b"\r\n")
        data = b"".join(head) + body
        reused = self._reader is not None
        try:
            return await self._exchange(data)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            # A server may close a keep-alive connection that sat idle; the
            # request was then never read, so it is sent once more, afresh.
            idle_close = isinstance(exc, ConnectionError) or not exc.partial
            if not (reused and idle_close):
                raise HttpError(f"{method} {path}: connection lost: {exc!r}") from exc
        try:
            return await self._exchange(data)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"{method} {path}: connection lost: {exc!r}") from exc

    async def _exchange(self, data: bytes) -> HttpAnswer:
        reader, writer = await self._open()
        writer.write(data)
        return await asyncio.wait_for(self._answer(reader), self._timeout)

    async def _answer(self, reader: asyncio.StreamReader) -> HttpAnswer:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise HttpError(f"HTTP {status} without Content-Length: {head[:300]!r}")
        return HttpAnswer(status, await reader.readexactly(length))

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
