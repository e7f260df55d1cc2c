"""evans (a gRPC client with a REPL and a CLI mode) against the command service.

evans is not a dependency of the project (it is a Go program): ``make test``
builds it into .venv/bin when Go is on the machine (scripts/evans.sh). This
test runs where an ``evans`` binary is there, on PATH or in ``EVANS_BIN``, and
is skipped, saying so, everywhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.body_log import BodyLog
from tests.e2e.support import unique_email
from tests.e2e.system_process import SystemProcess

pytestmark = pytest.mark.e2e

_BESIDE_PYTHON = Path(sys.executable).with_name("evans")  # where scripts/evans.sh puts it
EVANS = (
    os.environ.get("EVANS_BIN")
    or (str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else None)
    or shutil.which("evans")
)


@pytest.mark.skipif(
    EVANS is None,
    reason="evans is not installed (a Go binary, not a project dependency); "
    "put it on PATH or set EVANS_BIN to run this test",
)
def test_evans_cli_registers_through_reflection(
    e2e_system: SystemProcess, body_log: BodyLog
) -> None:
    assert EVANS is not None
    request = {"email": unique_email("evans"), "password": "Evans-Pass-1"}
    done = subprocess.run(
        [
            EVANS,
            "--host",
            "127.0.0.1",
            "--port",
            str(e2e_system.ports.command_grpc),
            "--reflection",
            "cli",
            "call",
            "cqrs.command.v1.CommandService.Register",
        ],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body_log.add("evans Register", done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["message"] == "User registered successfully"
    assert answer["version"] == 1
