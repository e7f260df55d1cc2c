"""The client package as a user gets it: ``pip install ./clients/python`` into a fresh
virtual environment pulls no server dependency, and its quickstart runs against the
system this session started (from outside the repository, so nothing else is importable)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "clients" / "python"
# What the client needs, and what those need (grpclib: h2 and its parts, multidict;
# betterproto: python-dateutil, typing-extensions).
EXPECTED = {
    "cqrs-users-client",
    "betterproto",
    "grpclib",
    "h2",
    "hpack",
    "hyperframe",
    "multidict",
    "python-dateutil",
    "six",
    "typing-extensions",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with ``pip install ./clients/python`` and nothing else."""
    folder = tmp_path_factory.mktemp("client-venv")
    # A copy, so that pip's in-tree build leaves nothing in the repository.
    source = shutil.copytree(
        CLIENT, folder / "source", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True, timeout=120)
    python = folder / "venv" / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    yield python


def test_the_package_pulls_no_server_dependency(venv: Path) -> None:
    listed = subprocess.run(
        [str(venv), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    resolved = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    resolved -= {"pip", "setuptools", "wheel"}
    server = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    server_only = {_name(r) for r in server} - {"betterproto", "grpclib"}
    assert not resolved & server_only, f"server dependencies installed: {resolved & server_only}"
    assert {"grpcio", "protobuf", "googleapis-common-protos"}.isdisjoint(resolved)
    assert resolved == EXPECTED, f"resolved: {sorted(resolved)}"


def test_the_quickstart_runs_against_the_system(
    venv: Path, e2e_system: SystemProcess, tmp_path: Path
) -> None:
    ports = e2e_system.ports
    ran = subprocess.run(
        [
            str(venv),
            str(CLIENT / "examples" / "quickstart.py"),
            "--store",
            f"127.0.0.1:{ports.store_grpc}",
            "--command",
            f"127.0.0.1:{ports.command_grpc}",
            "--query",
            f"127.0.0.1:{ports.query_grpc}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # outside the repository: only the installed package is importable
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout
    assert "refused: {'email': 'must be a valid email address', 'password': " in out, out
    assert re.search(r"^registered quickstart-\w+@example.com as [0-9a-f-]{36}", out, re.M), out
    assert "email changed to moved-" in out and "state now: moved-" in out, out
    assert re.search(r"^state at .*: quickstart-\w+@example.com \(version 2\)$", out, re.M), out
    assert "read model: moved-" in out and ", active" in out, out
