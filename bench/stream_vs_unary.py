"""Messages/s of a bare grpc.aio echo: unary calls against one bidirectional stream.

    python -m bench.stream_vs_unary [--seconds 4] [--rounds 2]

The evidence behind docs/adr/0006-append-stream.md: same 300-byte payload, 64
requests in flight, the server in its own process, rounds alternating. A
figure, not a test; the ratio is what matters on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from bench.processes import free_port

_PAYLOAD = b"x" * 300
_IN_FLIGHT = 64


def _identity(data: bytes) -> bytes:
    return data


async def _serve(port: int) -> None:
    server = grpc.aio.server()

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo, _identity, _identity),
            "Stream": grpc.stream_stream_rpc_method_handler(stream, _identity, _identity),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _unary_rate(channel: grpc.aio.Channel, seconds: float) -> float:
    echo = channel.unary_unary("/bench.Echo/Echo", None, None)
    count = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await echo(_PAYLOAD)
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(_IN_FLIGHT)))
    return count / (time.perf_counter() - started)


async def _stream_rate(channel: grpc.aio.Channel, seconds: float) -> float:
    call: Any = channel.stream_stream("/bench.Echo/Stream", None, None)(None)
    outbox: asyncio.Queue[bytes] = asyncio.Queue()
    waiting: list[asyncio.Future[None]] = []  # the echo answers in order
    count = 0
    end = time.perf_counter() + seconds

    async def write() -> None:
        while True:
            await call.write(await outbox.get())  # one writer: grpc.aio allows one write at a time

    async def read() -> None:
        async for _ in call:
            waiting.pop(0).set_result(None)

    async def worker() -> None:
        nonlocal count
        loop = asyncio.get_running_loop()
        while time.perf_counter() < end:
            answered: asyncio.Future[None] = loop.create_future()
            waiting.append(answered)
            outbox.put_nowait(_PAYLOAD)
            await answered
            count += 1

    helpers = [asyncio.create_task(write()), asyncio.create_task(read())]
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(_IN_FLIGHT)))
    rate = count / (time.perf_counter() - started)
    for task in helpers:
        task.cancel()
    call.cancel()
    return rate


async def _measure(port: int, seconds: float, rounds: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await channel.channel_ready()
        for n in range(1, rounds + 1):
            unary = await _unary_rate(channel, seconds)
            stream = await _stream_rate(channel, seconds)
            print(
                f"round {n}: unary {unary:,.0f} calls/s, one stream {stream:,.0f} messages/s "
                f"= {stream / unary:.2f} x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.stream_vs_unary", "--serve", str(port)])
    try:
        asyncio.run(_measure(port, args.seconds, args.rounds))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
