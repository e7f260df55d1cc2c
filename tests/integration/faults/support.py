"""The production stack as real processes, a bounded command load, and the infra switches.

store_svc (ClickHouse, relay to a fresh Kafka topic), command_svc,
query_svc (PostgreSQL, Kafka source) and the gateway run as ``python -m
...`` on fixed free loopback ports, each restartable on the same port.
``scripts/infra.sh stop|start|crash|pause|resume <component>`` takes a real
server away and back, or hangs it (SIGSTOP) and lets it go on (SIGCONT).
The servers are the ones ``scripts/infra.sh`` runs for the environment the
tests were started with: a private instance when ``INFRA_DIR`` and
``INFRA_PORT_OFFSET`` name one (what ``scripts/infra.sh env`` exports).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cqrs.command.v1 import command_pb2 as cmd
from cqrs.command.v1 import command_pb2_grpc as cmd_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.faults import http

REPO = Path(__file__).resolve().parents[3]
INFRA = REPO / "scripts" / "infra.sh"
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """``python -m <module>`` with an environment, on a fixed port, restartable."""

    def __init__(
        self, module: str, env: dict[str, str], port: int, log: Path, *, http: bool = False
    ) -> None:
        self.module = module
        self.env = {"PATH": os.environ.get("PATH", ""), **env}
        self.port = port
        self.log = log
        self.http = http  # ready when GET /health/live answers (the gateway), else gRPC health
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, *, within: float = 30.0) -> None:
        """Starts it and waits for SERVING; a process that exits (e.g. a writer lease
        still held after a crash) is started again until ``within`` runs out."""
        deadline = time.monotonic() + within
        while True:
            self._spawn()
            if await self._serving(deadline):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise TimeoutError(f"{self.module} not serving after {within}s: {self.tail()}")
            await asyncio.sleep(0.5)

    def _spawn(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], env=self.env, stdout=out, stderr=out
            )

    async def _serving(self, deadline: float) -> bool:
        if self.http:
            return await self._live(deadline)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return True
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        return False

    async def _live(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            live = await http.request(self.port, "GET", "/health/live", give_up_after=1)
            if live.status == 200:
                return True
            await asyncio.sleep(0.1)
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s); the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


async def infra(action: str, component: str) -> None:
    """``scripts/infra.sh <action> <component>`` (bounded)."""
    proc = await asyncio.create_subprocess_exec(
        str(INFRA),
        action,
        component,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError(f"infra.sh {action} {component} failed: {out.decode()[-2000:]}")


def infra_manages(component: str) -> bool:
    """True when the component is a server infra.sh runs (so the test may stop it)."""
    result = subprocess.run(
        [str(INFRA), "status", component], capture_output=True, text=True, timeout=30, check=False
    )
    return "running (pid" in result.stdout


# -- the load -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledged command: the event it stored, where."""

    kind: str
    user_id: str
    version: int
    position: int
    at: float


@dataclass
class Load:
    """Workers sending commands through command_svc until stopped (bounded in time).

    Each user: Register, ChangeEmail, RecordLogin x2, and every fifth Deactivate.
    After a failed command the worker moves on to a new user (the failed one's
    outcome is unknown). Every answer is recorded.
    """

    stub: cmd_grpc.CommandServiceAsyncStub
    metadata: list[tuple[str, str]]
    workers: int = 3
    pause: float = 0.01
    timeout: float = 5.0  # each call's deadline (the client's)
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[float, str, grpc.StatusCode, str]] = field(default_factory=list)
    # Every call: (started, seconds, status code name), acknowledged or not.
    calls: list[tuple[float, float, str]] = field(default_factory=list)
    unknown: Counter[tuple[str, str]] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def start(self, *, max_seconds: float = 90.0) -> None:
        deadline = time.monotonic() + max_seconds
        self._tasks = [asyncio.create_task(self._work(deadline)) for _ in range(self.workers)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def acked_since(self, moment: float) -> int:
        return sum(1 for a in self.acks if a.at >= moment)

    def failed_since(self, moment: float) -> list[tuple[float, str, grpc.StatusCode, str]]:
        return [f for f in self.failures if f[0] >= moment]

    def calls_since(
        self, moment: float, *, until: float = float("inf")
    ) -> list[tuple[float, float, str]]:
        return [c for c in self.calls if moment <= c[0] <= until]

    async def _call(self, kind: str, user_id: str, rpc: Any, request: Any) -> Any:
        started = time.monotonic()
        try:
            response = await rpc(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            self.calls.append((started, time.monotonic() - started, exc.code().name))
            self.failures.append((time.monotonic(), kind, exc.code(), exc.details() or ""))
            self.unknown[(user_id, kind)] += 1
            return None
        self.calls.append((started, time.monotonic() - started, "OK"))
        user = user_id or response.id
        self.acks.append(
            Ack(kind, user, int(response.version), int(response.position), time.monotonic())
        )
        return response

    async def _work(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            i = next(self._ids)
            tag = uuid.uuid4().hex[:10]
            registered = await self._call(
                "user.created",
                "",
                self.stub.Register,
                cmd.RegisterRequest(email=f"load{i}-{tag}@example.com", password=PASSWORD),
            )
            if registered is None:
                await asyncio.sleep(0.1)
                continue
            uid = registered.id
            steps: list[tuple[str, Any, Any]] = [
                (
                    "user.email.changed",
                    self.stub.ChangeEmail,
                    cmd.ChangeEmailRequest(id=uid, new_email=f"moved{i}-{tag}@example.com"),
                ),
                (
                    "user.login.recorded",
                    self.stub.RecordLogin,
                    cmd.RecordLoginRequest(id=uid, client_address="10.1.2.3"),
                ),
                (
                    "user.login.recorded",
                    self.stub.RecordLogin,
                    cmd.RecordLoginRequest(id=uid, client_address="10.1.2.4"),
                ),
            ]
            if i % 5 == 0:
                steps.append(
                    (
                        "user.deactivated",
                        self.stub.Deactivate,
                        cmd.DeactivateRequest(id=uid, reason="load test"),
                    )
                )
            for kind, rpc, request in steps:
                await asyncio.sleep(self.pause)
                if await self._call(kind, uid, rpc, request) is None:
                    break


def check_acks_in_store(
    load: Load, positions: dict[int, tuple[str, int, str]], counts: dict[tuple[str, str], int]
) -> None:
    """Nothing acknowledged is lost, nothing is stored twice.

    ``positions``: position -> (aggregate id, version, event type) of every
    stored event; ``counts``: (aggregate id, event type) -> events stored.
    """
    acked: dict[tuple[str, str], int] = defaultdict(int)
    for ack in load.acks:
        assert positions.get(ack.position) == (ack.user_id, ack.version, ack.kind), ack
        acked[(ack.user_id, ack.kind)] += 1
    unacked_users = 0
    for key, stored in counts.items():
        if key[1] == "user.created" and not acked[key]:
            unacked_users += 1  # a Register whose answer was lost; it has no id to match
            continue
        # Stored at least what was acknowledged, at most that plus the commands
        # whose outcome is unknown (a failure after the store committed).
        assert acked[key] <= stored <= acked[key] + load.unknown[key], (key, stored)
    assert unacked_users <= load.unknown[("", "user.created")]
