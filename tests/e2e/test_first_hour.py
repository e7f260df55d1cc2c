"""A new user's first hour: moved ports work in one-process mode, and a bad
setting or a busy port ends in one clear line and a non-zero exit, never a
traceback, whether ``make up`` or a service alone meets it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_kit.keys import init_keys
from tests.e2e.body_log import BodyLog
from tests.e2e.http_client import HttpClient
from tests.e2e.support import register
from tests.e2e.system_process import SystemPorts, free_ports, start_system, system_env

pytestmark = pytest.mark.e2e


def test_moved_listen_addresses_are_followed_in_one_process(tmp_path: Path) -> None:
    # Only the listen addresses are given (on free ports, away from the
    # defaults): every caller must find the services where they listen.
    unset_targets = {"STORE_GRPC_TARGET": "", "COMMAND_GRPC_TARGET": "", "QUERY_GRPC_TARGET": ""}
    system = start_system(tmp_path, BodyLog(), extra_env=unset_targets)
    try:
        http = HttpClient(system.ports.auth, BodyLog(), prefix="/v1")
        register(http, "moved-ports")
    finally:
        assert system.stop() == 0, system.log_tail()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def run(module: str, tmp_path: Path, overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ports = SystemPorts(*free_ports(6))
    env = system_env(dict(os.environ), ports, tmp_path / "data") | overrides
    return subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], *words: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    last = done.stderr.strip().splitlines()[-1]
    assert all(word in last for word in words), output


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("STORE_GRPC_LISTEN", "nonsense", ("STORE_GRPC_LISTEN", "host:port")),
        ("COMMAND_GRPC_LISTEN", "127.0.0.1:70000", ("COMMAND_GRPC_LISTEN", "0..65535")),
        ("QUERY_GRPC_LISTEN", "no-such-host.invalid:9095", ("QUERY_GRPC_LISTEN", "unknown host")),
        ("LOG_FORMAT", "yaml", ("LOG_FORMAT",)),
        ("OTEL_TRACES_EXPORTER", "zipkin", ("OTEL_TRACES_EXPORTER",)),
    ],
)
def test_make_up_refuses_a_bad_setting_in_one_line(
    tmp_path: Path, setting: str, value: str, words: tuple[str, ...]
) -> None:
    assert_one_clear_line(run("bootstrap", tmp_path, {setting: value}), "make up:", *words)


@pytest.mark.parametrize(
    "setting", ["STORE_GRPC_LISTEN", "COMMAND_GRPC_LISTEN", "QUERY_GRPC_LISTEN", "METRICS_PORT"]
)
def test_make_up_names_a_busy_port_in_one_line(
    tmp_path: Path, busy_port: int, setting: str
) -> None:
    value = str(busy_port) if setting == "METRICS_PORT" else f"127.0.0.1:{busy_port}"
    done = run("bootstrap", tmp_path, {setting: value})
    assert_one_clear_line(done, setting, str(busy_port), "in use")


@pytest.mark.parametrize(
    ("module", "setting"),
    [("store_svc", "STORE_GRPC_LISTEN"), ("query_svc", "QUERY_GRPC_LISTEN")],
)
def test_a_service_alone_names_a_busy_port_in_one_line(
    tmp_path: Path, busy_port: int, module: str, setting: str
) -> None:
    init_keys(tmp_path / "data" / "keys")
    done = run(module, tmp_path, {setting: f"127.0.0.1:{busy_port}"})
    assert_one_clear_line(done, f"{module}:", setting, "in use")
