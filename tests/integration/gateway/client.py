"""A real HTTP client for the tests: urllib in a thread, and raw sockets.

httpx is not a dependency; urllib speaks plain HTTP/1.1 like curl does,
including curl's habit of sending JSON as form-urlencoded.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


_TIMEOUT = 10.0  # seconds; every test request finishes far sooner


def _fetch(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


async def fetch(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    return await asyncio.to_thread(_fetch, url, method, body, headers or {})


def _lines(
    url: str,
    *,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    count: int,
    until: Callable[[bytes], bool] | None,
) -> tuple[int, dict[str, str], list[bytes]]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
        lines = []
        for _ in range(count):
            line = response.readline()
            if not line:
                break
            lines.append(line)
            if until is not None and until(line):
                break
        return response.status, {k.lower(): v for k, v in response.headers.items()}, lines


async def read_lines(
    url: str,
    *,
    count: int,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    until: Callable[[bytes], bool] | None = None,
) -> tuple[int, dict[str, str], list[bytes]]:
    """Reads up to ``count`` lines of a streamed answer (or to the one ``until``
    accepts), then hangs up."""
    return await asyncio.to_thread(
        _lines, url, method=method, body=body, headers=headers or {}, count=count, until=until
    )


async def raw_exchange(port: int, head: bytes, chunks: Sequence[bytes] = ()) -> bytes:
    """Sends raw bytes (a request head, then body chunks) and returns the raw answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        for chunk in chunks:
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError:
                break  # the server answered and closed early, as it may
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
