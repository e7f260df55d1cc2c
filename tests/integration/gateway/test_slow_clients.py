"""Slow and greedy clients against a real gateway (loopback only, bounded in time).

Half-sent heads are dropped after the read timeout, oversized heads are 431,
and connections beyond the caps are answered 503 and closed at once, so a
flood cannot hold the gateway's file descriptors. Every test runs with each
of uvicorn's parsers (the guard is built for both).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from gateway import app as gateway_app
from gateway.connection_limits import PARSERS

from .client import fetch, raw_exchange
from .conftest import Fakes, Running, gateway_settings

pytestmark = pytest.mark.integration

READ_TIMEOUT = 1.0
MAX_CONNECTIONS = 40
PER_CLIENT = 30


@pytest.fixture(params=PARSERS)
async def strict(fakes: Fakes, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    settings = gateway_settings(
        http_parser=request.param,
        store=fakes.target(0),
        command=fakes.target(1),
        query=fakes.target(2),
        read_timeout=READ_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
        max_connections_per_client=PER_CLIENT,
    )
    running = await gateway_app.start(settings)
    try:
        yield Running(running)
    finally:
        await running.stop()


# The writers must outlive the test's reads: a collected StreamWriter closes its socket.
_WRITERS: list[asyncio.StreamWriter] = []


async def _open(port: int, source: str = "127.0.0.1") -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    _WRITERS.append(writer)
    return reader


async def _open_half_sent(port: int, source: str = "127.0.0.1") -> asyncio.StreamReader:
    reader = await _open(port, source)
    _WRITERS[-1].write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await _WRITERS[-1].drain()
    return reader


@pytest.fixture(autouse=True)
def _close_writers() -> Iterator[None]:
    yield
    for writer in _WRITERS:
        writer.close()
    _WRITERS.clear()


async def test_a_half_sent_head_is_dropped_with_408_after_the_read_timeout(
    strict: Running,
) -> None:
    readers = [await _open_half_sent(strict.port) for _ in range(10)]
    started = time.monotonic()
    answers = await asyncio.wait_for(asyncio.gather(*(r.read() for r in readers)), timeout=10)
    elapsed = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), (answers, elapsed)
    assert READ_TIMEOUT * 0.8 <= elapsed < READ_TIMEOUT + 3
    # The gateway still serves.
    assert (await fetch(f"{strict.url}/health")).status in {200, 503}


async def test_a_kept_alive_connection_gets_408_for_a_half_sent_second_head(
    strict: Running,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    _WRITERS.append(writer)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert first.startswith(b"HTTP/1.1 "), first
    length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=READ_TIMEOUT + 5)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_a_slow_body_is_dropped_too(strict: Running) -> None:
    head = b"POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    try:
        writer.write(head)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=READ_TIMEOUT + 5)
    finally:
        writer.close()
    # Closed within the bound (what it answered, if anything, is the app's to say).
    assert b" 201 " not in answer[:20]


async def test_a_head_over_64_kib_is_431(strict: Running) -> None:
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n"
    answer = await raw_exchange(strict.port, big)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    # A head just under the bound is served.
    fine = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 60_000
    answer = await raw_exchange(strict.port, fine + b"\r\n\r\n")
    assert not answer.startswith(b"HTTP/1.1 431 ")


async def test_a_head_over_64_kib_sent_in_small_pieces_is_431(strict: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict.port)
    _WRITERS.append(writer)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    # 16 headers of 4 KiB (one write, and read, apiece): the last one crosses 64 KiB,
    # and nothing is sent after it, so the server's close is not a reset.
    for i in range(16):
        writer.write(b"X-Part-%d: " % i + b"a" * 4096 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.005)
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


async def test_connections_beyond_the_caps_are_refused_at_once(strict: Running) -> None:
    held = [await _open_half_sent(strict.port) for _ in range(PER_CLIENT)]
    # One more from the same client: 503 with Retry-After, closed at once.
    extra = await _open_half_sent(strict.port)
    answer = await asyncio.wait_for(extra.read(), timeout=READ_TIMEOUT / 2)
    assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer
    # Another client still gets in, up to the total cap.
    others = [await _open_half_sent(strict.port, "127.0.0.2") for _ in range(10)]
    over = await _open_half_sent(strict.port, "127.0.0.3")
    answer = await asyncio.wait_for(over.read(), timeout=READ_TIMEOUT / 2)
    assert answer.startswith(b"HTTP/1.1 503 ")
    # All of them are let go by the read timeout; then the gateway serves again.
    await asyncio.wait_for(asyncio.gather(*(r.read() for r in held + others)), timeout=10)
    assert (await fetch(f"{strict.url}/health")).status in {200, 503}


async def test_a_flood_of_idle_connections_does_not_hold_descriptors(strict: Running) -> None:
    readers: list[asyncio.StreamReader] = []
    for i in range(300):
        readers.append(await _open(strict.port, f"127.0.1.{i % 200 + 1}"))
    await asyncio.sleep(0.2)
    assert len(strict.gateway.server.server_state.connections) <= MAX_CONNECTIONS
    await asyncio.wait_for(asyncio.gather(*(r.read() for r in readers)), timeout=10)
    assert len(strict.gateway.server.server_state.connections) == 0
