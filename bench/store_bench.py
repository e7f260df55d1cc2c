"""Event store benchmark: appends against the echo ceiling, and time travel.

Prints, for each backend (SQLite always; ClickHouse when CLICKHOUSE_HOST is
set), in ONE run so that the ratios compare like with like on this shared,
noisy machine:

- the echo ceiling: calls/s of a bare grpcio.aio echo server (own process),
  64 concurrent callers, request bytes = a serialized single-event Append;
- store appends: single-event Append calls/s, 64 concurrent clients each on
  its own stream, against store_svc in its own process (auth on, as deployed);
- time travel on a 1,000-event stream: GetStateAt p50/p99, without a snapshot
  and through one.

Reproduce: ``make bench-store`` (or ``.venv/bin/python -m bench.store_bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cqrs.eventstore.v1 import event_store_pb2 as pb
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, struct_pb2

from bench.echo_server import ECHO_METHOD
from service_kit.auth import ROLE_SERVICE, Principal, TokenCodec
from service_kit.timeconv import to_timestamp

CONCURRENCY = 64
SECRET = "benchmark-secret-of-at-least-32-bytes!!"
FAKE_HASH = "$2b$12$" + "b" * 53


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def created_request(user_id: str) -> pb.AppendRequest:
    return pb.AppendRequest(
        aggregate_id=user_id,
        aggregate_type="user",
        no_stream=empty_pb2.Empty(),
        events=[
            pb.ProposedEvent(
                event_id=str(uuid.uuid4()),
                event_type="user.created",
                payload=struct(
                    {"email": f"{user_id}@example.com", "password_hash": FAKE_HASH, "role": "user"}
                ),
                claims=[pb.Claim(namespace="user.email", value=f"{user_id}@example.com")],
            )
        ],
    )


def login_request(user_id: str, version: int) -> pb.AppendRequest:
    return pb.AppendRequest(
        aggregate_id=user_id,
        aggregate_type="user",
        exact=version,
        events=[
            pb.ProposedEvent(
                event_id=str(uuid.uuid4()),
                event_type="user.login.recorded",
                payload=struct({"client_address": "127.0.0.1"}),
            )
        ],
    )


async def wait_port(target: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with grpc.aio.insecure_channel(target) as ch:
                await asyncio.wait_for(ch.channel_ready(), 1.0)
                return
        except (TimeoutError, grpc.aio.AioRpcError):
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{target} did not come up")


async def rate(
    call: Callable[[int, int], Awaitable[object]], seconds: float, warmup: float = 1.0
) -> float:
    """Calls/s of ``call(worker, i)`` looped by CONCURRENCY workers after a warm-up."""
    counting = False
    count = 0
    stop = False

    async def worker(w: int) -> None:
        nonlocal count
        i = 0
        while not stop:
            await call(w, i)
            i += 1
            if counting:
                count += 1

    tasks = [asyncio.create_task(worker(w)) for w in range(CONCURRENCY)]
    await asyncio.sleep(warmup)
    counting = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    counted, elapsed = count, time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return counted / elapsed


async def echo_rate(seconds: float) -> float:
    port = free_port()
    # A benchmark driver, not a server: a blocking spawn before measuring is fine.
    proc = subprocess.Popen([sys.executable, "-m", "bench.echo_server", str(port)])  # noqa: ASYNC220
    try:
        target = f"127.0.0.1:{port}"
        await wait_port(target)
        payload = login_request(str(uuid.uuid4()), 1).SerializeToString()
        async with grpc.aio.insecure_channel(target) as channel:
            echo = channel.unary_unary(
                ECHO_METHOD, request_serializer=None, response_deserializer=None
            )

            async def call(w: int, i: int) -> object:
                return await echo(payload, timeout=10)

            return await rate(call, seconds)
    finally:
        proc.terminate()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def store_figures(backend: str, seconds: float) -> dict[str, float]:
    port = free_port()
    data = tempfile.mkdtemp(prefix="bench-store-")
    env = {
        **os.environ,
        "DATA_DIR": data,
        "STORE_GRPC_LISTEN": f"127.0.0.1:{port}",
        "EVENT_STORE_BACKEND": backend,
        "SNAPSHOT_EVERY": "0",
        "JWT_SECRET": SECRET,
    }
    if backend == "clickhouse":
        env["CLICKHOUSE_DB"] = f"bench_{uuid.uuid4().hex[:10]}"
    log = Path(data) / "store.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - see echo_rate
            [sys.executable, "-m", "store_svc"], env=env, stdout=out, stderr=out
        )
    codec = TokenCodec(SECRET)
    token, _ = codec.issue(
        Principal(subject="bench", email="", role=ROLE_SERVICE), now=datetime.now(UTC)
    )
    md = (("authorization", f"Bearer {token}"),)
    figures: dict[str, float] = {}
    try:
        target = f"127.0.0.1:{port}"
        await wait_port(target)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.EventStoreServiceStub(channel)
            streams = [str(uuid.uuid4()) for _ in range(CONCURRENCY)]
            versions = [0] * CONCURRENCY
            for w, user_id in enumerate(streams):
                await stub.Append(created_request(user_id), metadata=md, timeout=30)
                versions[w] = 1

            async def append(w: int, i: int) -> object:
                result = await stub.Append(
                    login_request(streams[w], versions[w]), metadata=md, timeout=30
                )
                versions[w] = result.version
                return result

            figures["appends_per_s"] = await rate(append, seconds)

            # A 1,000-event stream: created + 999 logins, written in chunks.
            user_id = str(uuid.uuid4())
            await stub.Append(created_request(user_id), metadata=md, timeout=30)
            version = 1
            while version < 1000:
                n = min(100, 1000 - version)
                req = login_request(user_id, version)
                req.events.extend(login_request(user_id, 0).events[0] for _ in range(n - 1))
                for e in req.events:
                    e.event_id = str(uuid.uuid4())
                version = (await stub.Append(req, metadata=md, timeout=30)).version
            at = to_timestamp(datetime.now(UTC))

            async def state_at_latencies(n: int) -> list[float]:
                out = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = await stub.GetStateAt(
                        pb.GetStateAtRequest(aggregate_id=user_id, timestamp=at),
                        metadata=md,
                        timeout=30,
                    )
                    out.append((time.perf_counter() - t0) * 1000)
                    assert r.state.version == 1000
                return out

            await state_at_latencies(5)  # warm caches
            plain = await state_at_latencies(100)
            await asyncio.sleep(0.01)
            await stub.CreateSnapshot(
                pb.CreateSnapshotRequest(aggregate_id=user_id), metadata=md, timeout=30
            )
            at = to_timestamp(datetime.now(UTC))
            await state_at_latencies(5)
            snap = await state_at_latencies(200)
            figures["state_at_p50_ms"] = statistics.median(plain)
            figures["state_at_p99_ms"] = percentile(plain, 0.99)
            figures["snapshot_state_at_p50_ms"] = statistics.median(snap)
            figures["snapshot_state_at_p99_ms"] = percentile(snap, 0.99)
    finally:
        proc.terminate()
        proc.wait()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per rate")
    args = parser.parse_args()
    backends = ["sqlite"] + (["clickhouse"] if os.environ.get("CLICKHOUSE_HOST") else [])
    ceiling = await echo_rate(args.seconds)
    print(
        f"machine: {os.cpu_count()} cores; concurrency {CONCURRENCY}; {args.seconds:.0f} s per rate"
    )
    print(f"echo ceiling (bare grpcio.aio, own process): {ceiling:,.0f} calls/s")
    print()
    print(
        f"{'backend':<11}{'appends/s':>11}{'x echo':>9}{'state-at p50':>14}{'p99':>8}"
        f"{'via snapshot p50':>18}{'p99':>8}"
    )
    for backend in backends:
        f = await store_figures(backend, args.seconds)
        print(
            f"{backend:<11}{f['appends_per_s']:>11,.0f}{f['appends_per_s'] / ceiling:>9.2f}"
            f"{f['state_at_p50_ms']:>12.2f}ms{f['state_at_p99_ms']:>6.2f}ms"
            f"{f['snapshot_state_at_p50_ms']:>16.2f}ms{f['snapshot_state_at_p99_ms']:>6.2f}ms"
        )
    print()
    print("targets: appends ≥ 0.50 x echo; state-at p50 ≤ 10 ms; via snapshot p50 ≤ 3 ms")
    print('reproduce: make bench-store   (ClickHouse row needs: eval "$(scripts/infra.sh env)")')


if __name__ == "__main__":
    asyncio.run(main())
