"""``python -m bench.ryw_breakdown [CALLS]``: where a read-your-write's time goes (production).

Starts the production stack (as scenario 9 does; needs ``eval "$(scripts/infra.sh env)"``
with Kafka), registers one user and, ``CALLS`` times (default 200), changes its
email through the gateway, then reads it with ``GET /v1/users/{id}?min_position=``.
Beside it, a consumer of our own reads the relay's topic, so each change gives:

- **put**: the ``PUT`` (the command, the store's INSERTs on ClickHouse);
- **ack -> Kafka**: from the PUT's answer until our consumer has the record (the
  store's subscription, the relay, the broker);
- **ack -> GET answered**: the scenario's read-your-write figure (the above, then
  query_svc's consumer, the projector's commit on PostgreSQL, the read).

The difference of the last two is query_svc's share. A diagnostic: figures on
a shared machine move from run to run; compare within one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time

import grpc
from aiokafka import AIOKafkaConsumer
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc

from bench.context import Budget, RunContext
from bench.http_client import HttpAnswer, HttpConnection, HttpError
from bench.stack import StackSpec, running_stack
from bench.users import BenchUser, register_users

_PAUSE = 0.05  # between changes: each read-your-write starts from an idle stack


def _ok(answer: HttpAnswer) -> HttpAnswer:
    if not 200 <= answer.status < 300:
        raise HttpError(f"HTTP {answer.status}: {answer.body[:300]!r}")
    return answer


async def _follow(consumer: AIOKafkaConsumer, seen: dict[int, float]) -> None:
    async for record in consumer:
        headers = dict(record.headers or ())
        seen[int(headers["position"])] = time.perf_counter()


async def _changes(
    connection: HttpConnection, user: BenchUser, seen: dict[int, float], calls: int
) -> list[tuple[float, float, float]]:
    rows = []
    for _ in range(calls):
        email = user.next_email()
        body = b'{"new_email":"' + email.encode() + b'"}'
        started = time.perf_counter()
        path = f"/v1/users/{user.user_id}"
        put = await connection.request("PUT", f"{path}/email", body=body, headers=user.metadata)
        acked = time.perf_counter()
        position = int(_ok(put).json()["position"])
        read = await connection.request(
            "GET", f"{path}?min_position={position}", headers=user.metadata
        )
        answered = time.perf_counter()
        if _ok(read).json()["user"]["email"] != email:
            raise AssertionError("the read did not show the write")
        await asyncio.sleep(_PAUSE)
        rows.append((acked - started, seen.get(position, float("nan")) - acked, answered - acked))
    return rows


def _quantile(values: list[float], q: float) -> float:
    known = sorted(v for v in values if not math.isnan(v))
    return 1000.0 * known[min(len(known) - 1, int(q * len(known)))] if known else float("nan")


async def main(calls: int) -> None:
    spec = StackSpec.production(os.environ)
    if "KAFKA_BROKER" not in spec.infra:
        raise SystemExit("needs KAFKA_BROKER (the production stack's Kafka feed)")
    tokens = RunContext(spec, Budget.quick(), 4).tokens
    async with running_stack(spec, command=True, query=True, gateway=True, label="ryw") as stack:
        async with grpc.aio.insecure_channel(stack.command_target) as channel:
            (user,) = await register_users(cpb_grpc.CommandServiceStub(channel), tokens, 1)
        seen: dict[int, float] = {}
        consumer = AIOKafkaConsumer(
            stack.env["KAFKA_TOPIC"],
            bootstrap_servers=spec.infra["KAFKA_BROKER"].split(","),
            auto_offset_reset="latest",
        )
        await consumer.start()
        following = asyncio.create_task(_follow(consumer, seen))
        host, _, port = stack.gateway_target.rpartition(":")
        connection = HttpConnection(host, int(port))
        try:
            await asyncio.sleep(1.0)  # the consumer has its partitions
            rows = await _changes(connection, user, seen, calls)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            await consumer.stop()
            await connection.close()
    print(f"{calls} read-your-writes, production stack, load average {os.getloadavg()[0]:.1f}")
    for name, column in (("put", 0), ("ack -> Kafka", 1), ("ack -> GET answered", 2)):
        values = [row[column] for row in rows]
        print(
            f"{name:20s} p50 {_quantile(values, 0.5):6.1f}  p90 {_quantile(values, 0.9):6.1f}"
            f"  p99 {_quantile(values, 0.99):6.1f}  max {_quantile(values, 1.0):6.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
