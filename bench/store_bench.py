"""Event store benchmark: appends against the echo ceiling, and time travel.

Prints, for each backend (SQLite always; ClickHouse when the infra env is
set), in ONE run so that the ratios compare like with like on this shared,
noisy machine:

- the echo ceiling: calls/s of a bare grpcio.aio echo server (own process),
  64 concurrent callers, request bytes = a serialized single-event Append;
- store appends: single-event Append calls/s, 64 concurrent clients each on
  its own stream, against store_svc in its own process (auth on, as deployed);
- time travel on a 1,000-event stream: GetStateAt p50/p99, without a snapshot
  and through one.

A subset of ``python -m bench`` (scenarios 1, 2 and 5), kept for its short
table. Reproduce: ``make bench-store`` (or ``.venv/bin/python -m bench.store_bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from bench.measure import CONCURRENCY
from bench.scenarios.appends import append_rate
from bench.scenarios.ceiling import echo_rate
from bench.scenarios.time_travel import state_at_latencies
from bench.stack import InfraMissing, StackSpec, running_stack
from bench.tokens import Tokens

_WARMUP = 1.0
_STATE_AT_CALLS = 100


async def _store_figures(spec: StackSpec, seconds: float) -> dict[str, float]:
    md = Tokens().service()
    async with (
        running_stack(spec, extra_env={"SNAPSHOT_EVERY": "0"}) as stack,
        grpc.aio.insecure_channel(stack.store_target) as channel,
    ):
        stub = pb_grpc.EventStoreServiceStub(channel)
        appends = await append_rate(stub, md, seconds=seconds, warmup=_WARMUP)
        plain, snap = await state_at_latencies(stub, md, calls=_STATE_AT_CALLS)
    return {
        "appends_per_s": appends.per_second,
        "state_at_p50_ms": plain.p50_ms,
        "state_at_p99_ms": plain.p99_ms,
        "snapshot_state_at_p50_ms": snap.p50_ms,
        "snapshot_state_at_p99_ms": snap.p99_ms,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per rate")
    args = parser.parse_args()
    specs = [("sqlite", StackSpec.embedded())]
    if os.environ.get("CLICKHOUSE_HOST"):
        try:
            specs.append(("clickhouse", StackSpec.production(os.environ)))
        except InfraMissing as exc:
            print(f"clickhouse row skipped: {exc}")
    ceiling = (await echo_rate(seconds=args.seconds, warmup=_WARMUP)).per_second
    print(
        f"machine: {os.cpu_count()} cores; concurrency {CONCURRENCY}; {args.seconds:.0f} s per rate"
    )
    print(f"echo ceiling (bare grpcio.aio, own process): {ceiling:,.0f} calls/s")
    print()
    print(
        f"{'backend':<11}{'appends/s':>11}{'x echo':>9}{'state-at p50':>14}{'p99':>8}"
        f"{'via snapshot p50':>18}{'p99':>8}"
    )
    for backend, spec in specs:
        f = await _store_figures(spec, args.seconds)
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
