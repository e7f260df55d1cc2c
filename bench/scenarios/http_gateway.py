"""Scenario 9: what users feel, through the HTTP gateway (issue 18).

The whole stack runs (store, command, query, gateway: separate processes,
BCRYPT_COST 10 as in the issue's comparison with the Go seed), and beside
it a bare Starlette JSON echo on the gateway's own uvicorn settings
(:mod:`bench.http_echo_server`), the HTTP ceiling. All HTTP load uses one
client (:mod:`bench.http_client`, keep-alive, one connection per client).

Figures, in this order:

- **register**: 16 clients ``POST /v1/register`` for one window; the rate and
  the CPU per registration (services and infrastructure apart, from /proc),
  less one bcrypt hash's own CPU (measured in this process at the same cost).
  The infrastructure is shared with other clients: what each server used in 5
  idle seconds before (per second) is taken off its figure for the window;
- **change email, 32 clients**, 100 users (each client owns its own users, so
  no two calls race on one stream): rounds of echo / gRPC ChangeEmail (to
  command_svc directly) / HTTP ``PUT /v1/users/{id}/email``, alternating, each
  figure a median over rounds, the ratios medians of per-round ratios;
- **sequential change email**: one client, back to back, p50/p99;
- **read your write**: a change, then one ``GET /v1/users/{id}?min_position=``
  at its position (the query side waits until its projector has applied it,
  no polling by the client); the GET's latency, the answer checked;
- **state at a time** on a 1,000-event stream (store defaults: automatic
  snapshots), sequential, each answer checked to be at version 1,000.

:func:`cross_stack_rows` adds the sequential p50 ratio production / embedded
when both stacks ran.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

import grpc
from cqrs.command.v1 import command_pb2 as cpb
from cqrs.command.v1 import command_pb2_grpc as cpb_grpc
from cqrs.eventstore.v1 import event_store_pb2_grpc as pb_grpc

from bench.context import RunContext
from bench.cpu import CpuMeter, infra_pids
from bench.http_client import HttpAnswer, HttpConnection, HttpError
from bench.measure import Latencies, RateResult, closed_loop
from bench.processes import ServiceProcess, child_env, free_port, wait_listening
from bench.report import Row, Target
from bench.stack import EMBEDDED, PRODUCTION, StackSpec, running_stack
from bench.tokens import Metadata
from bench.users import BenchUser, register_users
from bench.workload import PASSWORD, user_history_appends
from service_kit.passwords import PasswordHasher

__all__ = ["cross_stack_rows", "run"]

NUMBER = 9
CLIENTS = 32
USERS = 100
REGISTER_CLIENTS = 16
BCRYPT_COST = 10
STREAM_LENGTH = 1000
_CALL_TIMEOUT = 30.0
_SEQUENTIAL_WHAT = "sequential HTTP ChangeEmail, p50"
_IDLE_SECONDS = 5.0

TARGET_GRPC = Target(">=", 0.7, text=">= 0.70 x gRPC")
TARGET_ECHO = Target(">=", 0.2, text=">= 0.20 x echo")
TARGET_BEYOND_BCRYPT = Target("<=", 20.0, on_figure=True, text="<= 20 ms")
TARGET_RYW = Target("<=", 100.0, on_figure=True, text="p99 <= 100 ms")
TARGET_SEQUENTIAL = Target("<=", 1.5, text="<= 1.50 x embedded")


@dataclass(slots=True)
class _Http:
    """One keep-alive connection per client to one HTTP server."""

    host: str
    port: int
    connections: list[HttpConnection]

    @classmethod
    def to(cls, target: str, clients: int) -> _Http:
        host, _, port = target.rpartition(":")
        return cls(host, int(port), [HttpConnection(host, int(port)) for _ in range(clients)])

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


@asynccontextmanager
async def _http_echo() -> AsyncIterator[tuple[str, int]]:
    """The bare echo server in its own process; yields its target and pid."""
    target = f"127.0.0.1:{free_port()}"
    with TemporaryDirectory(prefix="bench-http-echo-") as folder:
        server = ServiceProcess(
            "bench.http_echo_server",
            env=child_env({}),
            log_dir=Path(folder),
            args=(target.rpartition(":")[2],),
        )
        await server.start(target, ready=wait_listening)
        try:
            yield target, server.pid
        finally:
            await server.stop()


def _infra_ports(spec: StackSpec) -> dict[str, int]:
    if spec.name != PRODUCTION:
        return {}
    ports = {
        "clickhouse": int(spec.infra["CLICKHOUSE_HOST"].rpartition(":")[2]),
        "postgres": int(spec.infra["POSTGRES_QUERY_PORT"]),
    }
    if spec.infra.get("KAFKA_BROKER"):
        ports["kafka"] = int(spec.infra["KAFKA_BROKER"].split(",")[0].rpartition(":")[2])
    return ports


def _ok(answer: HttpAnswer) -> HttpAnswer:
    if not 200 <= answer.status < 300:
        raise HttpError(f"HTTP {answer.status}: {answer.body[:300]!r}")
    return answer


def _email_body(email: str) -> bytes:
    return b'{"new_email":"' + email.encode() + b'"}'


def _per_op_ms(
    result: RateResult, names: Sequence[str], idle: Mapping[str, float] | None = None
) -> float:
    """CPU milliseconds per counted call, summed over ``names``; with ``idle`` (CPU
    seconds per second each process used with no load from us), less that share."""
    if not result.calls:
        return float("nan")
    idle = idle or {}
    used = (max(0.0, result.cpu.get(n, 0.0) - idle.get(n, 0.0) * result.seconds) for n in names)
    return 1000.0 * sum(used) / result.calls


async def _idle_rates(meter: CpuMeter, seconds: float) -> dict[str, float]:
    """CPU seconds per second of every metered process while we send nothing: the
    shared servers' load from other clients (and our services' timers)."""
    before = meter.sample()
    await asyncio.sleep(seconds)
    return {name: used / seconds for name, used in meter.sample().minus(before).items()}


async def _bcrypt_cpu_ms(cost: int) -> float:
    """CPU of one hash at ``cost`` (median of 5), in this process while it does nothing else."""
    hasher = PasswordHasher(cost, max_workers=1)
    samples = []
    for _ in range(5):
        started = time.process_time()
        await hasher.hash(PASSWORD)
        samples.append(time.process_time() - started)
    return 1000.0 * statistics.median(samples)


async def _register(
    ctx: RunContext, gateway: str, meter: CpuMeter
) -> tuple[RateResult, list[BenchUser]]:
    http = _Http.to(gateway, REGISTER_CLIENTS)
    run = uuid.uuid4().hex[:8]
    registered: list[tuple[str, str]] = []

    async def register(w: int, i: int) -> object:
        email = f"http{w}-{i}-{run}@bench.example.com"
        body = f'{{"email":"{email}","password":"{PASSWORD}"}}'.encode()
        answer = _ok(await http.connections[w].request("POST", "/v1/register", body=body))
        registered.append((answer.json()["id"], email))
        return answer

    try:
        result = await closed_loop(
            register,
            workers=REGISTER_CLIENTS,
            seconds=ctx.budget.seconds,
            warmup=ctx.budget.warmup,
            meter=meter,
        )
    finally:
        await http.close()
    users = [
        BenchUser(user_id, email, ctx.tokens.user(user_id, email), 1, 0)
        for user_id, email in registered[:USERS]
    ]
    return result, users


def _mine(users: list[BenchUser], w: int, i: int) -> BenchUser:
    """Client ``w``'s ``i``-th user: clients own disjoint users (w, w+32, ...)."""
    own = users[w::CLIENTS]
    return own[i % len(own)]


async def _change_email_rounds(
    ctx: RunContext,
    targets: tuple[str, str, str],
    users: list[BenchUser],
    meter: CpuMeter,
) -> tuple[list[RateResult], list[RateResult], list[RateResult]]:
    """(echo, gRPC, HTTP) rates, ``targets`` = (gateway, echo, command_svc)."""
    budget = ctx.budget
    stack_gateway, echo, command = targets
    gateway_http = _Http.to(stack_gateway, CLIENTS)
    echo_http = _Http.to(echo, CLIENTS)
    echoes: list[RateResult] = []
    grpcs: list[RateResult] = []
    https: list[RateResult] = []
    async with grpc.aio.insecure_channel(command) as channel:
        stub = cpb_grpc.CommandServiceStub(channel)

        async def via_echo(w: int, i: int) -> object:
            user = _mine(users, w, i)
            return _ok(
                await echo_http.connections[w].request(
                    "PUT",
                    f"/v1/users/{user.user_id}/email",
                    body=_email_body(user.next_email()),
                    headers=user.metadata,
                )
            )

        async def via_grpc(w: int, i: int) -> object:
            user = _mine(users, w, i)
            return await stub.ChangeEmail(
                cpb.ChangeEmailRequest(id=user.user_id, new_email=user.next_email()),
                metadata=user.metadata,
                timeout=_CALL_TIMEOUT,
            )

        async def via_http(w: int, i: int) -> object:
            user = _mine(users, w, i)
            return _ok(
                await gateway_http.connections[w].request(
                    "PUT",
                    f"/v1/users/{user.user_id}/email",
                    body=_email_body(user.next_email()),
                    headers=user.metadata,
                )
            )

        try:
            for _ in range(budget.rounds):
                for call, out in ((via_echo, echoes), (via_grpc, grpcs), (via_http, https)):
                    out.append(
                        await closed_loop(
                            call,
                            workers=CLIENTS,
                            seconds=budget.seconds,
                            warmup=budget.warmup,
                            meter=meter,
                        )
                    )
                    # Connections left idle through the other windows would be
                    # closed by the server's keep-alive timeout: open anew.
                    await gateway_http.close()
                    await echo_http.close()
        finally:
            await gateway_http.close()
            await echo_http.close()
    return echoes, grpcs, https


async def _sequential(gateway: str, user: BenchUser, calls: int) -> Latencies:
    (connection,) = _Http.to(gateway, 1).connections
    out = []
    try:
        for _ in range(calls):
            started = time.perf_counter()
            _ok(
                await connection.request(
                    "PUT",
                    f"/v1/users/{user.user_id}/email",
                    body=_email_body(user.next_email()),
                    headers=user.metadata,
                )
            )
            out.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return Latencies.of(out)


async def _read_your_write(gateway: str, user: BenchUser, calls: int) -> Latencies:
    """The GET's latency after each change; each answer must show the new email."""
    (connection,) = _Http.to(gateway, 1).connections
    out = []
    try:
        for _ in range(calls):
            email = user.next_email()
            changed = _ok(
                await connection.request(
                    "PUT",
                    f"/v1/users/{user.user_id}/email",
                    body=_email_body(email),
                    headers=user.metadata,
                )
            ).json()
            started = time.perf_counter()
            answer = _ok(
                await connection.request(
                    "GET",
                    f"/v1/users/{user.user_id}?min_position={changed['position']}",
                    headers=user.metadata,
                )
            ).json()
            out.append(time.perf_counter() - started)
            if answer["user"]["email"] != email:
                raise AssertionError(f"read {answer['user']['email']!r} after writing {email!r}")
    finally:
        await connection.close()
    return Latencies.of(out)


async def _state_at(store: str, gateway: str, md: Metadata, calls: int) -> Latencies:
    user_id = str(uuid.uuid4())
    async with grpc.aio.insecure_channel(store) as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        for request in user_history_appends(user_id, STREAM_LENGTH, chunk=100):
            await stub.Append(request, metadata=md, timeout=_CALL_TIMEOUT)
    await asyncio.sleep(0.01)  # the point in time is strictly after the last event
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    (connection,) = _Http.to(gateway, 1).connections
    out = []
    try:
        for n in range(calls + 5):
            started = time.perf_counter()
            answer = _ok(
                await connection.request(
                    "GET", f"/v1/replay/user/{user_id}/state-at?timestamp={at}", headers=md
                )
            ).json()
            if n >= 5:  # the first calls warm caches
                out.append(time.perf_counter() - started)
            if answer["state"]["version"] != STREAM_LENGTH:
                raise AssertionError(f"state at version {answer['state']['version']}")
    finally:
        await connection.close()
    return Latencies.of(out)


def _cpu_details(results: Sequence[RateResult], meter: CpuMeter) -> dict[str, object]:
    return {
        "cpu_ms_per_op_services": [_per_op_ms(r, meter.service_names) for r in results],
        "cpu_ms_per_op_infra": [_per_op_ms(r, meter.infra_names) for r in results],
        "cpu_ms_per_op_by_process": {
            name: [_per_op_ms(r, (name,)) for r in results]
            for name in (*meter.service_names, *meter.infra_names, *meter.other_names)
        },
    }


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run(ctx: RunContext) -> list[Row]:
    name = ctx.stack.name
    budget = ctx.budget
    bcrypt_ms = await _bcrypt_cpu_ms(BCRYPT_COST)
    async with (
        running_stack(
            ctx.stack,
            command=True,
            query=True,
            gateway=True,
            bcrypt_cost=BCRYPT_COST,
            profiler=ctx.profiler,
            label="s9-http",
        ) as stack,
        _http_echo() as (echo, echo_pid),
    ):
        meter = CpuMeter(
            {module: process.pid for module, process in stack.processes.items()},
            infra_pids(_infra_ports(ctx.stack)),
            others={"http_echo": echo_pid, "load_generator": os.getpid()},
        )
        idle = await _idle_rates(meter, _IDLE_SECONDS)
        registration, users = await _register(ctx, stack.gateway_target, meter)
        async with grpc.aio.insecure_channel(stack.command_target) as channel:
            more = USERS - len(users)
            if more > 0:
                users += await register_users(
                    cpb_grpc.CommandServiceStub(channel), ctx.tokens, more
                )
        echoes, grpcs, https = await _change_email_rounds(
            ctx, (stack.gateway_target, echo, stack.command_target), users, meter
        )
        calls = budget.sequential_calls
        sequential = await _sequential(stack.gateway_target, users[0], calls)
        ryw = await _read_your_write(stack.gateway_target, users[1], calls // 2)
        state_at = await _state_at(
            stack.store_target, stack.gateway_target, ctx.tokens.service(), budget.time_travel_calls
        )
    services, infra = meter.service_names, meter.infra_names
    register_services = _per_op_ms(registration, services)
    register_infra = _per_op_ms(registration, infra, idle)
    beyond = register_services + register_infra - bcrypt_ms
    http_rate = _median([r.per_second for r in https])
    to_grpc = _median([h.per_second / g.per_second for h, g in zip(https, grpcs, strict=True)])
    to_echo = _median([h.per_second / e.per_second for h, e in zip(https, echoes, strict=True)])
    rounds = {
        "echo_per_s": [r.per_second for r in echoes],
        "grpc_per_s": [r.per_second for r in grpcs],
        "http_per_s": [r.per_second for r in https],
    }
    http_services = _median([_per_op_ms(r, services) for r in https])
    grpc_services = _median([_per_op_ms(r, services) for r in grpcs])
    echo_ms = _median([_per_op_ms(r, ("http_echo",)) for r in echoes])
    rows = [
        Row(
            NUMBER,
            name,
            f"HTTP register, {REGISTER_CLIENTS} clients, bcrypt cost {BCRYPT_COST}",
            registration.per_second,
            "users/s",
            details={"latency": registration.latencies, **_cpu_details([registration], meter)},
        ),
        Row(
            NUMBER,
            name,
            f"CPU per registration: services {register_services:.1f} + infra (less idle) "
            f"{register_infra:.1f} - bcrypt {bcrypt_ms:.1f} ms",
            beyond,
            "ms",
            target=TARGET_BEYOND_BCRYPT if name == PRODUCTION else None,
            details={
                "bcrypt_ms": bcrypt_ms,
                "services_ms": register_services,
                "infra_ms_less_idle": register_infra,
                "infra_ms_raw": _per_op_ms(registration, infra),
                "idle_cpu_per_s": idle,
            },
        ),
        Row(
            NUMBER,
            name,
            f"HTTP echo ceiling, {CLIENTS} clients ({echo_ms:.2f} ms CPU per call)",
            _median([r.per_second for r in echoes]),
            "calls/s",
            details={**rounds, **_cpu_details(echoes, meter)},
        ),
        Row(
            NUMBER,
            name,
            f"gRPC ChangeEmail, {CLIENTS} clients, {USERS} users",
            _median([r.per_second for r in grpcs]),
            "commands/s",
            details={**rounds, **_cpu_details(grpcs, meter)},
        ),
        Row(
            NUMBER,
            name,
            f"HTTP ChangeEmail, {CLIENTS} clients, {USERS} users",
            http_rate,
            "commands/s",
            ratio=to_grpc,
            ratio_to="gRPC",
            target=TARGET_GRPC,
            details={
                **rounds,
                **_cpu_details(https, meter),
                "latency_last_round": https[-1].latencies,
            },
        ),
        Row(
            NUMBER,
            name,
            "HTTP ChangeEmail / HTTP echo",
            http_rate,
            "commands/s",
            ratio=to_echo,
            ratio_to="echo",
            target=TARGET_ECHO if name == EMBEDDED else None,
        ),
        Row(
            NUMBER,
            name,
            f"CPU per ChangeEmail, services: HTTP (gRPC {grpc_services:.2f} ms)",
            http_services,
            "ms",
            details={"infra_ms_http": _median([_per_op_ms(r, infra) for r in https])},
        ),
        Row(
            NUMBER,
            name,
            _SEQUENTIAL_WHAT,
            sequential.p50_ms,
            "ms",
            details={"latency": sequential},
        ),
        Row(NUMBER, name, "sequential HTTP ChangeEmail, p99", sequential.p99_ms, "ms"),
        Row(NUMBER, name, "read your write (min_position), p50", ryw.p50_ms, "ms"),
        Row(
            NUMBER,
            name,
            "read your write (min_position), p99",
            ryw.p99_ms,
            "ms",
            target=TARGET_RYW if name == PRODUCTION else None,
            details={"latency": ryw},
        ),
        Row(
            NUMBER,
            name,
            f"HTTP state-at, {STREAM_LENGTH}-event stream, p50",
            state_at.p50_ms,
            "ms",
            details={"latency": state_at},
        ),
    ]
    return rows


def cross_stack_rows(rows: Sequence[Row]) -> list[Row]:
    """Sequential p50, production / embedded, when both stacks ran in this run."""
    p50: Mapping[str, float] = {
        row.stack: row.figure
        for row in rows
        if row.scenario == NUMBER and row.what == _SEQUENTIAL_WHAT
    }
    if EMBEDDED not in p50 or PRODUCTION not in p50:
        return []
    return [
        Row(
            NUMBER,
            PRODUCTION,
            "sequential HTTP ChangeEmail p50, production / embedded",
            p50[PRODUCTION],
            "ms",
            ratio=p50[PRODUCTION] / p50[EMBEDDED],
            ratio_to="embedded",
            target=TARGET_SEQUENTIAL,
        )
    ]
