"""Failover time of the ClickHouse store: leader SIGSTOP -> first acknowledgement by the standby.

A leader store_svc and a standby (``STORE_STANDBY=1``) on one fresh ClickHouse
database; a client appends to the leader, the leader is paused with SIGSTOP,
and the client retries on the standby until an append is acknowledged. The
time from the pause to that acknowledgement is the failover time: the lease
TTL (the standby may take over only once the leader's lease lapsed, by the
server's clock in whole seconds) plus the standby's polling (one heartbeat)
and its state load. Each round the paused leader is killed and a new standby
started behind the new leader.

Reproduce: ``eval "$(scripts/infra.sh env)"; .venv/bin/python -m bench.store_failover
[--rounds 3 --ttl-ms 15000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from bench import infra_cleanup
from bench.processes import child_env, free_port, wait_serving
from bench.tokens import KEYS_DIR, Tokens
from bench.workload import created_append


def _spawn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "store_svc"],
            env={**env, "STORE_GRPC_LISTEN": f"127.0.0.1:{port}"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _first_ack(target: str, md: tuple[tuple[str, str], ...], within: float) -> None:
    """Retries single appends on ``target`` until one is acknowledged."""
    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        while True:
            try:
                await stub.Append(created_append(str(uuid.uuid4())), metadata=md, timeout=1)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)


async def failover_times(infra: Mapping[str, str], rounds: int, ttl_ms: int) -> list[float]:
    """Seconds from the leader's SIGSTOP to the standby's first acknowledgement, per round.

    ``infra`` holds CLICKHOUSE_HOST (and user, password); a fresh database is
    made for the run and dropped after it.
    """
    database = f"bench_{uuid.uuid4().hex[:10]}"  # infra_cleanup drops only such names
    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    env = child_env(
        {
            "KEYS_DIR": str(KEYS_DIR),
            "DATA_DIR": str(work),
            "EVENT_STORE_BACKEND": "clickhouse",
            "CLICKHOUSE_HOST": infra["CLICKHOUSE_HOST"],
            "CLICKHOUSE_USER": infra.get("CLICKHOUSE_USER", "default"),
            "CLICKHOUSE_PASSWORD": infra.get("CLICKHOUSE_PASSWORD", ""),
            "CLICKHOUSE_DB": database,
            "STORE_RELAY": "off",
            "STORE_LEASE_TTL_MS": str(ttl_ms),
            "STORE_LEASE_HEARTBEAT_MS": str(max(ttl_ms // 5, 100)),
            "PYTHONUNBUFFERED": "1",
        }
    )
    md = Tokens().service()
    procs: list[subprocess.Popen[bytes]] = []
    figures: list[float] = []
    try:
        port = free_port()
        procs.append(_spawn(env, port, work / "leader-0.log"))
        leader = (procs[-1], port)
        await wait_serving(f"127.0.0.1:{port}")
        for round_ in range(rounds):
            standby_port = free_port()
            procs.append(
                _spawn({**env, "STORE_STANDBY": "1"}, standby_port, work / f"standby-{round_}.log")
            )
            standby = (procs[-1], standby_port)
            await _first_ack(f"127.0.0.1:{leader[1]}", md, within=30)
            await asyncio.sleep(1.0)  # the standby is polling for the lease by now
            leader[0].send_signal(signal.SIGSTOP)
            paused = time.monotonic()
            await _first_ack(f"127.0.0.1:{standby[1]}", md, within=ttl_ms / 1000 + 60)
            figures.append(time.monotonic() - paused)
            print(f"round {round_ + 1}: failover {figures[-1]:.2f} s", flush=True)
            leader[0].send_signal(signal.SIGKILL)
            leader[0].wait()
            leader = standby
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
        await infra_cleanup.drop_clickhouse_database(infra, database)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttl-ms", type=int, default=15_000, help="STORE_LEASE_TTL_MS")
    args = parser.parse_args()
    if not os.environ.get("CLICKHOUSE_HOST"):
        raise SystemExit('CLICKHOUSE_HOST is not set: eval "$(scripts/infra.sh env)" first')
    figures = await failover_times(os.environ, args.rounds, args.ttl_ms)
    print(
        f"lease TTL {args.ttl_ms / 1000:g} s: failover median {statistics.median(figures):.2f} s, "
        f"max {max(figures):.2f} s over {len(figures)} rounds "
        f"(load avg {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
