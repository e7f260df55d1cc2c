"""The whole system as ``make up`` runs it: ``python -m bootstrap`` in a subprocess.

It runs on free loopback ports, in a fresh data folder (where ``make up``
generates the keys, ``<data>/keys``), with bcrypt cost 4 (fast tests) and
admin credentials chosen here; mail goes to files in ``<data>/mail``. Variables of
the caller's environment that configure the project are dropped first, so
the run uses the embedded defaults whatever shell started pytest (``make
test`` exports the test infrastructure's addresses, for instance).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from service_kit.auth import ROLE_SERVICE, Principal, TokenSettings
from service_kit.timeconv import utcnow
from tests.e2e.body_log import BodyLog

# Prefixes of every variable the services read (see each settings module).
_PROJECT_VARIABLES = (
    "ADMIN_",
    "BCRYPT_",
    "CLICKHOUSE_",
    "COMMAND_",
    "DATA_DIR",
    "EVENT_STORE_",
    "GATEWAY_",
    "JWT_",
    "KAFKA_",
    "LOGIN_",
    "POSTGRES_",
    "QUERY_",
    "SNAPSHOT_",
    "STORE_",
    "KEYS_DIR",
    "MAIL_DIR",
    "SMTP_",
    "PASSWORD_RESET_",
    "EMAIL_VERIFICATION_",
    "REFRESH_TOKEN_",
    "PII_",
    "PUBLIC_URL",
    "CORS_",
    "LOG_",
    "METRICS_",
    "OTEL_",
)
STARTUP_TIMEOUT = 60.0
# The one origin CORS allows in the e2e runs (tests/e2e/test_cors.py); no page is served there.
CORS_ORIGIN = "https://app.example.test"
# The graceful-stop budget the suite holds the system to.
STOP_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class SystemPorts:
    """Gateway HTTP ports (auth, query, store, as the seed numbers them) and gRPC ports."""

    auth: int
    query: int
    store_http: int
    store_grpc: int
    command_grpc: int
    query_grpc: int


@dataclass(slots=True)
class SystemProcess:
    """A running ``python -m bootstrap`` and what a client needs to use it."""

    ports: SystemPorts
    admin_email: str
    admin_password: str
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def keys_dir(self) -> Path:
        """Where ``make up`` generated the system's keys."""
        return self.data_dir / "keys"

    @property
    def mail_dir(self) -> Path:
        """Where the system writes its mails (no SMTP server is set)."""
        return self.data_dir / "mail"

    def operator_token(self) -> str:
        """A service token of the gateway, signed with its key from the data folder:
        what an operator who can read the key files could mint.

        For readiness probes only: the tests themselves log in like users.
        """
        signer = TokenSettings(keys_dir=self.keys_dir).signer("gateway")
        operator = Principal(subject="gateway", email="", role=ROLE_SERVICE)
        return signer.issue(operator, now=utcnow())[0]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then wait; the exit code, or None if it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def free_ports(count: int) -> list[int]:
    """Distinct ports free right now (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# The production stack's servers, as `scripts/infra.sh env` exports them.
_INFRA_VARIABLES = (
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "POSTGRES_QUERY_HOST",
    "POSTGRES_QUERY_PORT",
    "POSTGRES_QUERY_USER",
    "POSTGRES_QUERY_PASSWORD",
    "POSTGRES_QUERY_DB",
    "KAFKA_BROKER",
)
MODES = ("embedded", "production")


def production_available(base: dict[str, str]) -> bool:
    """Whether the environment points at ClickHouse, PostgreSQL and Kafka."""
    return all(
        base.get(name) for name in ("CLICKHOUSE_HOST", "POSTGRES_QUERY_HOST", "KAFKA_BROKER")
    )


def production_env(base: dict[str, str], run_id: str) -> dict[str, str]:
    """ClickHouse event store, PostgreSQL read model fed from Kafka, each fresh for this run."""
    env = {name: base[name] for name in _INFRA_VARIABLES if name in base}
    env.update(
        {
            "EVENT_STORE_BACKEND": "clickhouse",
            "CLICKHOUSE_DB": f"e2e_{run_id}",
            "QUERY_DB_BACKEND": "postgres",
            "COMMAND_LIMITS_BACKEND": "postgres",
            "POSTGRES_QUERY_SCHEMA": f"e2e_{run_id}",
            "QUERY_EVENT_SOURCE": "kafka",
            "KAFKA_TOPIC": f"e2e-{run_id}",
            "KAFKA_GROUP": f"e2e-{run_id}",
        }
    )
    return env


def system_env(
    base: dict[str, str], ports: SystemPorts, data_dir: Path, mode: str = "embedded"
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(_PROJECT_VARIABLES)}
    if mode == "production":
        env.update(production_env(base, secrets.token_hex(5)))
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "BCRYPT_COST": "4",
            "ADMIN_EMAIL": "e2e-admin@example.com",
            "ADMIN_PASSWORD": "e2e-" + secrets.token_urlsafe(12),
            "STORE_GRPC_LISTEN": f"127.0.0.1:{ports.store_grpc}",
            "COMMAND_GRPC_LISTEN": f"127.0.0.1:{ports.command_grpc}",
            "QUERY_GRPC_LISTEN": f"127.0.0.1:{ports.query_grpc}",
            "STORE_GRPC_TARGET": f"127.0.0.1:{ports.store_grpc}",
            "COMMAND_GRPC_TARGET": f"127.0.0.1:{ports.command_grpc}",
            "QUERY_GRPC_TARGET": f"127.0.0.1:{ports.query_grpc}",
            "GATEWAY_PORTS": f"{ports.auth},{ports.query},{ports.store_http}",
            "CORS_ALLOWED_ORIGINS": CORS_ORIGIN,
            "PYTHONUNBUFFERED": "1",
            # The suite registers and logs in far more than one person would
            # from its one address; test_abuse runs a system with the defaults.
            "REGISTER_MAX_PER_ADDRESS": "1000000",
            "LOGIN_MAX_SUCCESSES_PER_EMAIL": "1000000",
            # Wrong passwords tried by many tests add up on 127.0.0.1 within the
            # window; a fresh user's first login from there would be refused.
            "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
        }
    )
    return env


def start_system(
    workdir: Path,
    log: BodyLog,
    *,
    mode: str = "embedded",
    attempts: int = 3,
    extra_env: dict[str, str] | None = None,
) -> SystemProcess:
    """Starts the system and returns once every port answers and the admin exists.

    A port taken between choosing and binding it makes the process exit at
    start; that is retried on new ports, ``attempts`` times in all.
    ``extra_env`` adds settings (e.g. an SMTP server) on top of the run's own.
    """
    failure = ""
    for attempt in range(attempts):
        ports = SystemPorts(*free_ports(6))
        data_dir = workdir / f"data-{attempt}"
        log_path = workdir / f"system-{attempt}.log"
        env = system_env(dict(os.environ), ports, data_dir, mode) | (extra_env or {})
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bootstrap"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        system = SystemProcess(
            ports=ports,
            admin_email=env["ADMIN_EMAIL"],
            admin_password=env["ADMIN_PASSWORD"],
            data_dir=data_dir,
            log_path=log_path,
            proc=proc,
            env=env,
        )
        if _wait_ready(system, log):
            return system
        failure = system.log_tail()
        system.stop()
        if "cannot listen" not in failure and "address already in use" not in failure.lower():
            break
    raise RuntimeError(f"the system did not start:\n{failure}")


def restart_system(system: SystemProcess, log: BodyLog) -> SystemProcess:
    """The same system started again after ``system.stop()``: the same environment,
    ports, data folder and databases (a new log file beside the first)."""
    log_path = system.log_path.with_name(system.log_path.stem + "-restarted.log")
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bootstrap"],
            env=system.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=system.log_path.parent,
        )
    again = replace(system, log_path=log_path, proc=proc)
    if not _wait_ready(again, log):
        again.stop()
        raise RuntimeError(f"the system did not start again:\n{again.log_tail()}")
    return again


def _wait_ready(system: SystemProcess, log: BodyLog) -> bool:
    """True once /health is 200 on every HTTP port and the admin can log in.

    The admin is bootstrapped (appended) after the services start, and login
    reads the read model; a login tried too early would fail and count
    against the login rate limit, so readiness waits until the read model
    lists the admin (``min_position=1``: the first event is its creation).
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    pending = [system.ports.auth, system.ports.query, system.ports.store_http]
    while time.monotonic() < deadline:
        if system.proc.poll() is not None:
            return False
        pending = [port for port in pending if not _healthy(port, log)]
        if not pending and _admin_listed(system, log):
            return True
        time.sleep(0.1)
    return False


def _get(port: int, path: str, log: BodyLog, token: str = "") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    log.add(f"HTTP GET {path} (port {port}) -> {response.status}", body)
    return response.status, body


def _healthy(port: int, log: BodyLog) -> bool:
    try:
        status, body = _get(port, "/health", log)
        return status == 200 and json.loads(body).get("status") == "ok"
    except (OSError, ValueError, http.client.HTTPException):
        return False


def _admin_listed(system: SystemProcess, log: BodyLog) -> bool:
    try:
        status, body = _get(
            system.ports.query, "/v1/users?min_position=1", log, system.operator_token()
        )
        users = json.loads(body).get("users", []) if status == 200 else []
    except (OSError, ValueError, http.client.HTTPException):
        return False
    return any(user.get("email") == system.admin_email for user in users)
