"""The system under test, started fresh for each scenario as separate processes.

Two stacks:

- ``embedded``: store_svc on SQLite, query_svc's read model on SQLite, the
  projector fed by the store's subscription (what ``make up`` runs);
- ``production``: store_svc on ClickHouse, the read model on PostgreSQL, the
  projector fed by Kafka when query_svc accepts ``QUERY_EVENT_SOURCE=kafka``
  (probed once per run: if query_svc refuses the setting, the store's
  subscription is used and the report says so).

Invariants: every scenario gets its own data (a fresh folder, a fresh
ClickHouse database, a fresh PostgreSQL schema, a fresh Kafka topic), removed
afterwards; services listen on loopback ports only; every process the stack
started is stopped when the ``async with`` block ends, even on error.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import infra_cleanup
from bench.processes import ServiceProcess, child_env, free_port, wait_listening, wait_serving
from bench.profiling import Profiler, Recording
from bench.tokens import KEYS_DIR

__all__ = ["EMBEDDED", "PRODUCTION", "RunningStack", "StackSpec", "running_stack"]

log = logging.getLogger("bench")

EMBEDDED: Final = "embedded"
PRODUCTION: Final = "production"
# Variables of the infra env (scripts/infra.sh env) the production stack needs.
_INFRA_VARS: Final = (
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "POSTGRES_QUERY_HOST",
    "POSTGRES_QUERY_PORT",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_QUERY_DB",
)
_REQUIRED_INFRA: Final = ("CLICKHOUSE_HOST", "POSTGRES_QUERY_HOST", "POSTGRES_QUERY_PORT")


class InfraMissing(Exception):
    """The production stack was asked for without the infra env."""


@dataclass(slots=True)
class StackSpec:
    """Which stack, and the settings shared by all of its services.

    ``event_source`` is the projector's feed actually used (``kafka`` or
    ``store``); it may change from ``kafka`` to ``store`` once, after the probe.
    """

    name: str
    infra: dict[str, str] = field(default_factory=dict)
    event_source: str = "store"
    kafka_probed: bool = False
    # Diagnostic settings for every service (``--env``); a scenario's own settings win.
    overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def embedded(cls) -> StackSpec:
        return cls(EMBEDDED)

    @classmethod
    def production(cls, environ: Mapping[str, str]) -> StackSpec:
        missing = [name for name in _REQUIRED_INFRA if not environ.get(name)]
        if missing:
            raise InfraMissing(
                f"production stack needs {', '.join(missing)}: "
                'run `eval "$(scripts/infra.sh env)"` first (make infra starts the servers)'
            )
        infra = {name: environ[name] for name in _INFRA_VARS if name in environ}
        kafka = environ.get("KAFKA_BROKER", "")
        if kafka:
            infra["KAFKA_BROKER"] = kafka
        return cls(PRODUCTION, infra, event_source="kafka" if kafka else "store")

    @property
    def description(self) -> str:
        if self.name == EMBEDDED:
            return "SQLite event store, SQLite read model, store subscription"
        return (
            "ClickHouse event store, PostgreSQL read model, "
            f"{'Kafka' if self.event_source == 'kafka' else 'store subscription'} feed"
        )


@dataclass(slots=True)
class RunningStack:
    """Targets of the services started so far ('' for one not started)."""

    spec: StackSpec
    env: dict[str, str]
    work: Path
    targets: dict[str, str]
    store_target: str = ""
    command_target: str = ""
    query_target: str = ""
    gateway_target: str = ""
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    profiler: Profiler | None = None
    label: str = ""
    recordings: list[Recording] = field(default_factory=list)

    async def start_query(self) -> None:
        """Starts query_svc now (e.g. after loading the store, to time its catch-up)."""
        await _start_query(self, self.env, self.work, self.targets["query"])
        self.query_target = self.targets["query"]


def _base_env(spec: StackSpec, data_dir: Path, tag: str, bcrypt_cost: int) -> dict[str, str]:
    env = {
        "KEYS_DIR": str(KEYS_DIR),
        "DATA_DIR": str(data_dir),
        "BCRYPT_COST": str(bcrypt_cost),
        "PYTHONUNBUFFERED": "1",
        # One load generator on loopback is many users: the per-client budgets
        # (docs/security.md) would measure refusals, not the system.
        "REGISTER_MAX_PER_ADDRESS": "1000000000",
        "LOGIN_MAX_SUCCESSES_PER_EMAIL": "1000000",
        "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    }
    if spec.name == PRODUCTION:
        env.update(spec.infra)
        env.update(
            {
                "EVENT_STORE_BACKEND": "clickhouse",
                "CLICKHOUSE_DB": f"bench_{tag}",
                "QUERY_DB_BACKEND": "postgres",
                "POSTGRES_QUERY_SCHEMA": f"bench_{tag}",
            }
        )
        if "KAFKA_BROKER" in spec.infra:
            # The store's outbox relay runs whenever a broker is configured (as
            # deployed); a topic of its own keeps the shared test topic clean.
            env["KAFKA_TOPIC"] = f"bench-{tag}"
        if spec.event_source == "kafka":
            env.update({"QUERY_EVENT_SOURCE": "kafka", "KAFKA_GROUP": f"bench-{tag}"})
    env.update(spec.overrides)
    return env


@contextlib.asynccontextmanager
async def running_stack(
    spec: StackSpec,
    *,
    command: bool = False,
    query: bool = False,
    gateway: bool = False,
    bcrypt_cost: int = 4,
    extra_env: Mapping[str, str] | None = None,
    profiler: Profiler | None = None,
    label: str = "",
) -> AsyncIterator[RunningStack]:
    """Starts store_svc (always), command_svc, query_svc and the gateway as asked; stops
    all at exit.

    ``bcrypt_cost`` is the services' BCRYPT_COST: scenarios whose measured
    path never hashes use the minimum so that their setup is quick.
    """
    tag = uuid.uuid4().hex[:10]
    work = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
    env = child_env({**_base_env(spec, work / "data", tag, bcrypt_cost), **(extra_env or {})})
    targets = {
        name: f"127.0.0.1:{free_port()}" for name in ("store", "command", "query", "gateway")
    }
    env.update(
        {
            "STORE_GRPC_LISTEN": targets["store"],
            "STORE_GRPC_TARGET": targets["store"],
            "COMMAND_GRPC_LISTEN": targets["command"],
            "COMMAND_GRPC_TARGET": targets["command"],
            "QUERY_GRPC_LISTEN": targets["query"],
            "QUERY_GRPC_TARGET": targets["query"],
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORTS": targets["gateway"].rpartition(":")[2],
        }
    )
    stack = RunningStack(spec, env, work, targets, profiler=profiler, label=label)
    failed = False
    try:
        await _start(stack, "store_svc", env, work, targets["store"])
        stack.store_target = targets["store"]
        if command:
            await _start(stack, "command_svc", env, work, targets["command"])
            stack.command_target = targets["command"]
        if query:
            await stack.start_query()
        if gateway:
            await _start(stack, "gateway", env, work, targets["gateway"], ready=wait_listening)
            stack.gateway_target = targets["gateway"]
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        for recording in stack.recordings:
            await recording.stop()
        for process in reversed(list(stack.processes.values())):
            await process.stop()
        if spec.name == PRODUCTION:
            await _drop_production_data(spec, tag)
        if failed:
            log.warning("service logs kept in %s", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


async def _start(
    stack: RunningStack,
    module: str,
    env: Mapping[str, str],
    work: Path,
    target: str,
    *,
    ready: Callable[[str], Coroutine[Any, Any, None]] = wait_serving,
) -> None:
    process = ServiceProcess(module, env=env, log_dir=work)
    stack.processes[module] = process
    await process.start(target, ready=ready)
    if stack.profiler is not None:
        stack.recordings.append(stack.profiler.attach({module: process.pid}, label=stack.label))


async def _start_query(stack: RunningStack, env: dict[str, str], work: Path, target: str) -> None:
    """Starts query_svc; on the first Kafka attempt, falls back to the store feed if refused."""
    spec = stack.spec
    try:
        await _start(stack, "query_svc", env, work, target)
        spec.kafka_probed = True
    except RuntimeError as exc:
        if (
            spec.event_source != "kafka"
            or spec.kafka_probed
            or "QUERY_EVENT_SOURCE" not in str(exc)
        ):
            raise
        log.warning("query_svc does not accept QUERY_EVENT_SOURCE=kafka yet: using the store feed")
        spec.event_source, spec.kafka_probed = "store", True
        stack.processes.pop("query_svc", None)
        for name in ("QUERY_EVENT_SOURCE", "KAFKA_GROUP"):
            env.pop(name, None)
        await _start(stack, "query_svc", env, work, target)


async def _drop_production_data(spec: StackSpec, tag: str) -> None:
    """Drops the scenario's ClickHouse database and PostgreSQL schema (best effort)."""
    await infra_cleanup.drop_clickhouse_database(spec.infra, f"bench_{tag}")
    await infra_cleanup.drop_postgres_schema(spec.infra, f"bench_{tag}")
    if spec.infra.get("KAFKA_BROKER"):
        await infra_cleanup.delete_kafka_topic(spec.infra, f"bench-{tag}")
