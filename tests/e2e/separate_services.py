"""The four services as separate processes (as docker-compose runs them), each
with its own ``METRICS_PORT``, on embedded storage in a fresh data folder.

The store's outbox relay publishes to Kafka when ``KAFKA_BROKER`` is given
(a fresh topic), so its lag gauge exists.
"""

from __future__ import annotations

import http.client
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from service_kit.keys import init_keys
from tests.e2e.system_process import SystemPorts, free_ports, system_env

SERVICES = ("store_svc", "command_svc", "query_svc", "gateway")
STARTUP_TIMEOUT = 60.0


@dataclass(slots=True)
class SeparateServices:
    """Ports of the running processes: gRPC/HTTP and each one's /metrics."""

    http_port: int
    metrics_ports: dict[str, int]
    logs: dict[str, Path]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def scrape(self, service: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_ports[service], timeout=10)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {s}\n{p.read_text(errors='replace')[-2000:]}" for s, p in self.logs.items()
        )


def _answers(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@contextmanager
def separate_services(workdir: Path, kafka_broker: str = "") -> Iterator[SeparateServices]:
    """Starts the four services (stopped with SIGTERM at the end)."""
    store, command, query, gateway_port, *metrics = free_ports(8)
    data = workdir / "data"
    init_keys(data / "keys")
    ports = SystemPorts(gateway_port, gateway_port, gateway_port, store, command, query)
    base = system_env(dict(os.environ), ports, data)
    base.pop("CORS_ALLOWED_ORIGINS", None)
    base["GATEWAY_PORTS"] = str(gateway_port)
    base["LOG_FORMAT"] = "json"
    if kafka_broker:
        base |= {"KAFKA_BROKER": kafka_broker, "KAFKA_TOPIC": f"metrics-{secrets.token_hex(4)}"}
    running = SeparateServices(gateway_port, dict(zip(SERVICES, metrics, strict=True)), {})
    try:
        for service in SERVICES:
            env = base | {"METRICS_PORT": str(running.metrics_ports[service])}
            running.logs[service] = workdir / f"{service}.log"
            with running.logs[service].open("wb") as out:
                running.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", service],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=workdir,
                    )
                )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(gateway_port, "/health/ready"):
            if time.monotonic() > deadline or any(p.poll() is not None for p in running.procs):
                raise RuntimeError(f"the services did not start:\n{running.log_tails()}")
            time.sleep(0.2)
        yield running
    finally:
        for proc in reversed(running.procs):
            proc.terminate()
        for proc in running.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
