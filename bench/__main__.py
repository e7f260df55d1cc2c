"""``python -m bench``: the benchmark harness (issue 6). Prints a table, writes JSON.

Scenarios (numbers as in the issue; ``--only`` picks some, and adds the ones
they need: 4 runs at half of the rate 3 measured):

1 echo ceiling   2 store appends   3 ChangeEmail end to end   4 projection lag
5 time travel    6 rebuild          7 login storm             8 peer (eventsourcing)
9 through the HTTP gateway: register, ChangeEmail against gRPC and an HTTP echo,
  sequential, read-your-write, state-at (issue 18)
10 store scale: open time and RSS of a store of 1 M users (SQLite; ClickHouse: 200 k),
  appends with cold and warm caches (issue 10)
11 store failover: leader SIGSTOP -> first acknowledgement by the standby
  (ClickHouse, production stack only; issue 10)

Services run as separate processes, started fresh per scenario; the load
generator is this process; everything listens on loopback; every scenario is
bounded in time and count. ``--stack both`` runs the embedded stack, then the
production one (needs ``eval "$(scripts/infra.sh env)"``). Scenario 8 runs
in-process on SQLite files, so it runs once, with the embedded stack (or
alone if only production was asked for).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shlex
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

import grpc

from bench import machine
from bench.context import Budget, RunContext
from bench.profiling import Profiler, find_py_spy
from bench.report import Row, render_table, write_json
from bench.scenarios import (
    appends,
    ceiling,
    change_email,
    http_gateway,
    login_storm,
    peer,
    projection_lag,
    rebuild,
    store_failover,
    store_scale,
    time_travel,
)
from bench.stack import EMBEDDED, PRODUCTION, InfraMissing, StackSpec
from service_kit.passwords import DEFAULT_COST, MAX_COST, MIN_COST

log = logging.getLogger("bench")

Scenario = Callable[[RunContext], Awaitable[list[Row]]]
SCENARIOS: Final[dict[int, tuple[str, Scenario]]] = {
    1: ("ceiling", ceiling.run),
    2: ("store appends", appends.run),
    3: ("ChangeEmail", change_email.run),
    4: ("projection lag", projection_lag.run),
    5: ("time travel", time_travel.run),
    6: ("rebuild", rebuild.run),
    7: ("login storm", login_storm.run),
    8: ("peer", peer.run),
    9: ("HTTP gateway", http_gateway.run),
    10: ("store scale", store_scale.run),
    11: ("store failover", store_failover.run),
}
NEEDS: Final[dict[int, tuple[int, ...]]] = {4: (3,)}
STACK_INDEPENDENT: Final = frozenset({8})
DEFAULT_JSON: Final = Path("bench/results/latest.json")


def selection(only: str | None) -> list[int]:
    """The scenarios to run, in order, with the ones their ratios need."""
    if not only:
        return sorted(SCENARIOS)
    try:
        chosen = {int(part) for part in only.split(",") if part.strip()}
    except ValueError:
        raise SystemExit(f"--only: expected numbers like 1,2,5, got {only!r}") from None
    unknown = chosen - SCENARIOS.keys()
    if unknown:
        raise SystemExit(f"--only: no scenario {sorted(unknown)} (1..{len(SCENARIOS)})")
    pending = list(chosen)
    while pending:
        for need in NEEDS.get(pending.pop(), ()):
            if need not in chosen:
                chosen.add(need)
                pending.append(need)
    return sorted(chosen)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", choices=(EMBEDDED, PRODUCTION, "both"), default=EMBEDDED)
    parser.add_argument("--quick", action="store_true", help="short durations (a smoke run)")
    parser.add_argument("--only", metavar="N,M", help="run only these scenarios (1..11)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="default: %(default)s")
    parser.add_argument(
        "--bcrypt-cost",
        type=int,
        default=DEFAULT_COST,
        choices=range(MIN_COST, MAX_COST + 1),
        metavar=f"{MIN_COST}..{MAX_COST}",
        help="BCRYPT_COST of scenario 7 (default: the services' default, %(default)s)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record every service with py-spy into DIR (figures then are diagnostic only)",
    )
    parser.add_argument("--py-spy", help="py-spy binary (default: on PATH)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting for every service, for diagnosis (the report marks such a run)",
    )
    return parser.parse_args(argv)


async def run_stack(
    spec: StackSpec, scenarios: list[int], ctx_factory: Callable[[StackSpec], RunContext]
) -> list[Row]:
    ctx = ctx_factory(spec)
    rows: list[Row] = []
    for number in scenarios:
        name, scenario = SCENARIOS[number]
        print(f"[{spec.name}] scenario {number}: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            new = await scenario(ctx)
        except Exception as exc:
            log.error("scenario %d on %s failed:\n%s", number, spec.name, traceback.format_exc())
            new = [Row.failed(number, spec.name, name, _describe(exc))]
        load = [round(x, 2) for x in os.getloadavg()]
        new = [replace(row, details={**row.details, "load_average_after": load}) for row in new]
        for row in new:
            figure = "" if math.isnan(row.figure) else f"{row.figure:,.2f} {row.unit}"
            print(f"    {row.what}: {figure} {row.verdict}", file=sys.stderr, flush=True)
        print(f"    ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
        rows.extend(new)
    return rows


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


async def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = parse(argv)
    chosen = selection(args.only)
    budget = Budget.quick() if args.quick else Budget.full()
    profiler = None
    if args.profile:
        profiler = Profiler(py_spy=find_py_spy(args.py_spy), out_dir=args.profile)
    stacks: list[StackSpec] = []
    try:
        if args.stack in (EMBEDDED, "both"):
            stacks.append(StackSpec.embedded())
        if args.stack in (PRODUCTION, "both"):
            stacks.append(StackSpec.production(os.environ))
    except InfraMissing as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    overrides = dict(item.partition("=")[::2] for item in args.env)
    if any(not key for key in overrides):
        raise SystemExit("--env: expected KEY=VALUE")
    for spec in stacks:
        spec.overrides = overrides
    meta = {
        "command": shlex.join(
            ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine.describe(),
        "quick": args.quick,
        "profiled": profiler is not None,
        "service_env_overrides": overrides,
        "scenarios": chosen,
        "budget": budget,
    }

    def context(spec: StackSpec) -> RunContext:
        return RunContext(spec, budget, args.bcrypt_cost, profiler=profiler)

    # The load generator shares the two cores: its own profile shows what it costs.
    self_recording = (
        profiler.attach({"bench": os.getpid()}, label="load-generator") if profiler else None
    )
    rows: list[Row] = []
    for index, spec in enumerate(stacks):
        own = [n for n in chosen if n not in STACK_INDEPENDENT or index == 0]
        rows.extend(await run_stack(spec, own, context))
    rows.extend(http_gateway.cross_stack_rows(rows))
    if self_recording is not None:
        await self_recording.stop()
    meta["stacks"] = {s.name: s.description for s in stacks}
    write_json(args.json, meta=meta, rows=rows)
    print()
    print(
        f"machine: {meta['machine']['nproc']} cores, {meta['machine']['cpu_model']}, "
        f"load average at start {meta['machine']['load_average_at_start']}"
    )
    for spec in stacks:
        print(f"{spec.name}: {spec.description}")
    if profiler is not None:
        print("PROFILED RUN: py-spy was sampling every service; figures are diagnostic only")
    if overrides:
        print(f"DIAGNOSTIC RUN: services ran with {overrides}; not the deployed defaults")
    print()
    print(render_table(rows))
    print()
    print(f"JSON: {args.json}")
    return 1 if any(r.verdict == "ERROR" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
